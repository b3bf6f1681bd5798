"""The first ONNX release that shipped each ai.onnx opset, and its date.

One row per opset of the default domain (``""`` = ai.onnx). Several opsets share a release when
they were created between two releases (opsets 3 and 4 both first shipped in ONNX 1.1.0).

Sources, checked for every row:

* **Which release shipped an opset.** The opset range a release declares in its own source:
  ``DomainToVersionRange`` in ``onnx/defs/schema.h`` of the release's sdist on PyPI (the value
  ``onnx.defs.onnx_opset_version()`` returns). For ONNX 1.3.0 and later this agrees with the
  "Released Versions" table of onnx's ``docs/Versioning.md`` and its copy
  ``onnx.helper.VERSION_TABLE`` (first row per opset). The early rows of that table are wrong,
  and the source wins:

  - 1.0.0 declares opsets 1-2 (Split, Pad, LpPool and GlobalLpPool at version 2); the table
    gives opset 2 to 1.1.
  - 1.1.0, 1.1.1 and 1.1.2 declare opsets 1-4 (GRU-3, Concat-4); the table gives opset 5 to 1.1
    and opset 6 to 1.1.2.
  - 1.2.1, the first 1.2 release on PyPI (there is no 1.2.0), declares opsets 1-7, so it is the
    first release with opsets 5 (Reshape-5), 6 and 7.
  - 1.4.0 already declares opset 9; the table lists 1.4.1, which was uploaded the same UTC day.

  The releases before 1.0.0 (0.1, 0.2, 0.2.1) have IR version 1 and no opsets.
* **The date.** The UTC day of the first file uploaded to PyPI for that version
  (``upload_time_iso_8601`` in https://pypi.org/pypi/onnx/json). Release candidates are not
  releases here: pip does not install them by default.

| opset | ONNX | first PyPI upload (UTC) |
|---|---|---|
| 1, 2 | 1.0.0 | 2017-12-04T23:39:43Z |
| 3, 4 | 1.1.0 | 2018-03-21T06:06:04Z |
| 5, 6, 7 | 1.2.1 | 2018-05-25T02:41:20Z |
| 8 | 1.3.0 | 2018-08-30T23:26:03Z |
| 9 | 1.4.0 | 2019-01-23T03:30:50Z |
| 10 | 1.5.0 | 2019-04-24T17:32:36Z |
| 11 | 1.6.0 | 2019-09-28T00:01:22Z |
| 12 | 1.7.0 | 2020-05-08T22:49:40Z |
| 13 | 1.8.0 | 2020-11-06T22:26:17Z |
| 14 | 1.9.0 | 2021-04-19T19:22:57Z |
| 15 | 1.10.0 | 2021-07-31T00:59:04Z |
| 16 | 1.11.0 | 2022-02-17T19:16:40Z |
| 17 | 1.12.0 | 2022-06-18T02:36:59Z |
| 18 | 1.13.0 | 2022-12-12T13:24:51Z |
| 19 | 1.14.0 | 2023-05-04T23:14:24Z |
| 20 | 1.15.0 | 2023-10-26T18:30:51Z |
| 21 | 1.16.0 | 2024-03-25T15:25:07Z |
| 22 | 1.17.0 | 2024-10-01T21:45:45Z |
| 23 | 1.18.0 | 2025-05-12T22:01:31Z |
| 24 | 1.19.0 | 2025-08-27T02:32:47Z |
| 25 | 1.20.0 | 2025-12-01T18:13:29Z |
| 26 | 1.21.0 | 2026-03-27T21:32:15Z |
| 27 | 1.22.0 | 2026-06-15T12:48:59Z |
| 28 | 1.23.0 | 2026-09-18T19:29:38Z |

Add a row when a new opset ships, from the same two sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["OPSET_RELEASE_DATES", "OpsetReleaseDate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsetReleaseDate:
    """The first ONNX release that shipped one ai.onnx opset.

    Attributes:
        opset: The ai.onnx opset version.
        onnx_version: The ONNX release (PyPI version string).
        released: UTC day of the release's first upload to PyPI.
    """

    opset: int
    onnx_version: str
    released: date

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "opset": self.opset,
            "onnx_version": self.onnx_version,
            "released": self.released.isoformat(),
        }


def _row(opset: int, onnx_version: str, released: str) -> OpsetReleaseDate:
    return OpsetReleaseDate(
        opset=opset, onnx_version=onnx_version, released=date.fromisoformat(released)
    )


OPSET_RELEASE_DATES: tuple[OpsetReleaseDate, ...] = (
    _row(1, "1.0.0", "2017-12-04"),
    _row(2, "1.0.0", "2017-12-04"),
    _row(3, "1.1.0", "2018-03-21"),
    _row(4, "1.1.0", "2018-03-21"),
    _row(5, "1.2.1", "2018-05-25"),
    _row(6, "1.2.1", "2018-05-25"),
    _row(7, "1.2.1", "2018-05-25"),
    _row(8, "1.3.0", "2018-08-30"),
    _row(9, "1.4.0", "2019-01-23"),
    _row(10, "1.5.0", "2019-04-24"),
    _row(11, "1.6.0", "2019-09-28"),
    _row(12, "1.7.0", "2020-05-08"),
    _row(13, "1.8.0", "2020-11-06"),
    _row(14, "1.9.0", "2021-04-19"),
    _row(15, "1.10.0", "2021-07-31"),
    _row(16, "1.11.0", "2022-02-17"),
    _row(17, "1.12.0", "2022-06-18"),
    _row(18, "1.13.0", "2022-12-12"),
    _row(19, "1.14.0", "2023-05-04"),
    _row(20, "1.15.0", "2023-10-26"),
    _row(21, "1.16.0", "2024-03-25"),
    _row(22, "1.17.0", "2024-10-01"),
    _row(23, "1.18.0", "2025-05-12"),
    _row(24, "1.19.0", "2025-08-27"),
    _row(25, "1.20.0", "2025-12-01"),
    _row(26, "1.21.0", "2026-03-27"),
    _row(27, "1.22.0", "2026-06-15"),
    _row(28, "1.23.0", "2026-09-18"),
)
"""One row per ai.onnx opset, in opset order (sources in the module docstring)."""
