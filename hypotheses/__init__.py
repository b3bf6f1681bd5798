"""Statistical hypothesis tests relating operator sequences to conversion mismatches.

Built in a later issue; the package exists so that the distribution layout is fixed.
"""
