"""The course's command-line tools for learners and instructors (``python -m captum_course``).

Kept apart from ``captum_helpers``, which is what the notebooks import: nothing here is
imported by a notebook, and each command imports what it needs only when it runs.
"""
