"""Placeholder: filled in by the work in progress."""


def add_commands(commands) -> None:
    return None
