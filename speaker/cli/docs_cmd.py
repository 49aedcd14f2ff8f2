"""`speaker completion SHELL` and `speaker man`: shell completion and a man page, both
generated from the command tree itself so they never drift from the CLI."""

from __future__ import annotations

import datetime
import re

import click
from click.shell_completion import get_completion_class

from speaker.supervisor import package_version

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL.

    bash: `speaker completion bash > /etc/bash_completion.d/speaker`;
    zsh: into a directory on $fpath as `_speaker`; fish: into
    ~/.config/fish/completions/speaker.fish."""
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion for {shell}")
    script = cls(root, {}, "speaker", "_SPEAKER_COMPLETE").source()
    click.echo(script, nl=False)


def _roff(text: str) -> str:
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line
                     for line in escaped.splitlines())


def _commands(group: click.Group, ctx: click.Context, prefix: str
              ) -> list[tuple[str, click.Command, click.Context]]:
    out: list[tuple[str, click.Command, click.Context]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx)
        out.append((f"{prefix} {name}", command, sub))
        if isinstance(command, click.Group):
            out += _commands(command, sub, f"{prefix} {name}")
    return out


def man_page(root: click.Group) -> str:
    """speaker(1) in roff, from every command's help and options."""
    ctx = click.Context(root, info_name="speaker")
    date = datetime.date.today().isoformat()
    lines = [f'.TH SPEAKER 1 "{date}" "edge-speaker {package_version()}" "edge-speaker"',
             ".SH NAME", "speaker \\- " + _roff((root.help or "").splitlines()[0]),
             ".SH SYNOPSIS", ".B speaker", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
             ".SH COMMANDS"]
    for path, command, sub in _commands(root, ctx, "speaker"):
        usage = " ".join(command.collect_usage_pieces(sub))
        lines += [".TP", f".B {_roff(path.strip())}", _roff(usage), ".br"]
        for paragraph in re.split(r"\n\s*\n", (command.help or "").strip()):
            if paragraph:
                lines += [_roff(" ".join(paragraph.split())), ".sp"]
        for param in command.get_params(sub):
            record = param.get_help_record(sub)
            if record is not None:
                lines += [".RS", ".TP", f".B {_roff(record[0])}", _roff(record[1]), ".RE"]
    lines += [".SH FILES", ".TP", ".B /etc/edge-speaker/speaker.yaml",
              "the appliance config (\\fBspeaker config check\\fR validates it)",
              ".TP", ".B /run/edge-speaker/api.sock", "the status API socket",
              ".SH SEE ALSO", "keepalived(8), ipvsadm(8), bird(8), exabgp(1)"]
    return "\n".join(lines) + "\n"


@click.command()
@click.pass_context
def man(ctx: click.Context) -> None:
    """Print the speaker(1) man page (roff): `speaker man > speaker.1`."""
    root = ctx.find_root().command
    if not isinstance(root, click.Group):  # pragma: no cover - speaker is a group
        raise click.UsageError("speaker is not a command group")
    click.echo(man_page(root), nl=False)
