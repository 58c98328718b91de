"""`faceres --help` is complete: every subcommand has a one-line help (in the list) and a description (on its own
page), every option and positional argument says what it is, and the top-level description is whole sentences."""

from __future__ import annotations

import argparse

from faceres.cli import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: str = "faceres"):
    """(name, parser, its one-line help in the parent's list) of every subcommand, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub, listed.get(name)
                yield from _commands(sub, f"{prefix} {name}")


def test_every_subcommand_has_a_help_line_and_a_description():
    commands = list(_commands(build_parser()))
    assert len(commands) >= 17  # the walk reached the subcommands (config ... replay)
    assert [name for name, _, listed in commands if not listed] == []
    assert [name for name, sub, _ in commands if not (sub.description or "").strip()] == []


def test_every_option_and_argument_has_a_help_text():
    parser = build_parser()
    missing = []
    for name, sub in [("faceres", parser)] + [(n, s) for n, s, _ in _commands(parser)]:
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():  # argparse.SUPPRESS hides an internal option on purpose
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_the_descriptions_read_whole_and_every_help_page_renders():
    parser = build_parser()
    assert parser.description.endswith("config).") and "the DVC stages call the same faceres.pipeline" in parser.description
    for name, sub, _ in _commands(parser):
        page = sub.format_help()  # a stray % in a help text raises here
        assert "%%" not in page and "%(" not in page, name
