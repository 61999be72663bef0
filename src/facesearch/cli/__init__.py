"""The `facesearch` command line."""

from __future__ import annotations

import typer

from facesearch.cli import archive, corrections, evaluate, models, persons, photos, server, service

app = typer.Typer(
    name="facesearch",
    help="Self-hosted face identification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(photos.detect)
app.command()(photos.verify)
# The command's first name, kept working: `verify` is the HTTP API's name.
app.command("compare", hidden=True)(photos.verify)
app.add_typer(service.collections_app, name="collections")
app.add_typer(persons.persons_app, name="persons")
app.add_typer(persons.groups_app, name="groups")
app.add_typer(corrections.unknowns_app, name="unknowns")
app.command()(service.enroll)
app.command()(service.identify)
app.command("identify-all")(service.identify_all)
app.command()(server.serve)
app.add_typer(server.keys_app, name="keys")
app.command()(server.audit)
app.command()(archive.export)
app.command("import")(archive.import_)
service.collections_app.command("migrate")(archive.collections_migrate)
sources_app = typer.Typer(help="Stored face sources (collection setting keep_source).", no_args_is_help=True)
sources_app.command("new-key")(archive.sources_new_key)
app.add_typer(sources_app, name="sources")
app.add_typer(evaluate.eval_app, name="eval")
app.add_typer(models.models_app, name="models")


def main() -> None:
    """Entry point of the console script."""
    app()
