"""Dialogs of the window that have their own module (the model zoo, class tables, the model in use)."""
