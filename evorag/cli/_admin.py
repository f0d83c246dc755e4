"""Administration: backup, restore, the effective settings, and the environment doctor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape as esc

from evorag.cli._app import JsonFlag, app, err, out, print_json, service

if TYPE_CHECKING:  # backups load the plugin repository: only when a command makes one (issue 14)
    from evorag.service import RestoreResult


@app.command("backup")
def backup_cmd(
    dest: Annotated[str, typer.Argument(help="The .tar.gz file to write.")],
    include_secret: Annotated[bool, typer.Option(
        "--include-secret",
        help="SENSITIVE: also store the manifest chain key, so that `restore --use-backup-secret` on another "
        "home keeps the deployed tools as verified. Whoever holds such a backup can make tools look verified: "
        "keep it like a password (the file is written 0600).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Back up EVORAG_HOME (index, catalog, metrics, approvals, plugins history, audit log)."""
    with service() as rag:
        result = rag.backup(Path(dest), include_secret=include_secret)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"wrote {result.path} ({result.bytes} bytes): {', '.join(result.parts)}", markup=False)
    if include_secret:
        err.print("note: this backup holds the manifest chain key; keep it as safe as a password", markup=False)


@app.command("restore")
def restore_cmd(
    archive: Annotated[str, typer.Argument(help="A backup written by `evorag backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty EVORAG_HOME.")] = False,
    use_backup_secret: Annotated[bool, typer.Option(
        "--use-backup-secret",
        help="Verify the backup's tools with the key stored in it (`backup --include-secret`) instead of this "
        "home's key; only for a backup you made yourself.")] = False,
    no_gates: Annotated[bool, typer.Option(
        "--no-gates", help="Leave quarantined tools in EVORAG_HOME/quarantine instead of sending them through "
        "the gates to the approval queue now.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore EVORAG_HOME from a backup, re-verifying every deployed tool.

    A tool stays deployed only if the manifest chain written at deploy time vouches for it (checked with this
    home's key, or the backup's with --use-backup-secret). Any other tool is quarantined and goes back through
    the gates into the approval queue: it is never deployed by a restore.
    """
    with service() as rag:
        result = rag.restore(Path(archive), force=force, use_backup_secret=use_backup_secret, gates=not no_gates)
    if as_json:
        print_json(result.to_dict())
        return
    _print_restore(result)


def _print_restore(result: RestoreResult) -> None:
    plugins = result.plugins
    out.print(f"restored {', '.join(result.parts) or 'nothing'} into {result.home}", markup=False)
    if plugins["verified"]:
        out.print(f"tools verified by the manifest chain ({plugins['key']} key): {', '.join(plugins['verified'])}",
                  markup=False)
    requeued = {item["tool"]: item for item in plugins.get("requeued", [])}
    for item in plugins["quarantined"]:
        line = f"quarantined {item['tool']}: {item['reason']}"
        after = requeued.get(item["tool"])
        if after is None:
            line += f"; its code is in {item['path']} (re-add it with `evorag tools add`)"
        elif after["status"] == "pending":
            line += f"; passed the gates, waiting for approval {after['approval_id']} (risk {after['risk']})"
        elif after["status"] == "rejected":
            line += f"; rejected by the {after['gate']} gate: {after['reason']}"
        else:
            line += f"; {after['status']}: {after['reason']} (code in {after['path']})"
        out.print(line, markup=False, highlight=False)  # the console strips control characters


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check the environments evorag runs on: `pip check`, drift from evorag's declared requirements (missing
    or out of range), every deployed tool's dependency environment (present, matching its lock, readable by the
    sandbox) and the tools' union lock. Exits 1 when a check finds a problem."""
    with service() as rag:
        report = rag.doctor()
    if as_json:
        print_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            out.print(f"{mark} {check.name}: {esc(check.detail)}", highlight=False)
            for problem in check.problems:
                out.print(f"    problem: {problem}", highlight=False, markup=False)
            for note in check.notes:
                out.print(f"    note: {note}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def config(as_json: JsonFlag = False) -> None:
    """Show the effective settings (secrets masked) and where they come from."""
    with service() as rag:
        data = rag.config()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        out.print(f"{key} = {value}", highlight=False, markup=False)
