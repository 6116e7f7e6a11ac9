"""doctagger-keywords: a rule-based ``keywords`` task type for doctagger, and the commands
to manage its rules (``doctagger keywords ...``).

This module is the plugin: the entry point ``[project.entry-points.doctagger]
keywords = "doctagger_keywords"`` makes doctagger register it, and pluggy calls the two
``@hookimpl`` functions below. Heavy work is imported inside them, so loading the plugin
costs doctagger's start-up next to nothing.
"""
from doctagger.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_task_types(register):
    from doctagger_keywords.tasktype import KeywordsTaskType

    register(KeywordsTaskType)


@hookimpl
def register_commands(cli):
    from doctagger_keywords.commands import keywords

    cli.add_command(keywords)
