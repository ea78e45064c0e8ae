"""The ``tag`` command: serve the page tagger for a series config until Ctrl+C.

    python dataset_tool_anime.py tag --series series.json [--episode ep01] [--port 8765] [--open]
        [--cuts cuts] [--proposals proposals]

Argument parsing only; the tagger lives in manganime_ext.tagger.
"""

import os
import webbrowser

import click

from manganime_ext.cli.errors import UserError, user_errors
from manganime_ext.data import export, series_config
from manganime_ext.tagger.server import TaggerServer
from manganime_ext.tagger.workspace import TaggerError, Workspace


@click.command(name="tag")
@click.option("--series", "series_path", required=True, type=click.Path(), help="The series config (series.json).")
@click.option("--episode", default=None, help="Episode to open first (by name; default the first).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep the default unless you mean others to reach the tagger.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--cuts", "cuts_path", default=None, type=click.Path(),
              help="The cuts command's --out folder or {episode: [frames]} (default: detected from each store's rho).")
@click.option("--proposals", default=None, type=click.Path(),
              help="The align command's --out folder: its boundaries are shown as ghosts to accept.")
@user_errors
def tag(series_path, episode, port, host, open_browser, cuts_path, proposals) -> None:
    """Tag where each manga page ends, in the browser; every change is saved at once."""
    series = series_config.load(series_path)
    names = [ep.name for ep in series.episodes]
    if episode is not None and episode not in names:
        raise UserError(f"--episode {episode}: not in {series_path} (episodes: {', '.join(names)})")
    cuts = export.load_cuts(cuts_path) if cuts_path else None
    try:
        workspace = Workspace(series, cuts, proposals)
    except TaggerError as e:
        raise UserError(str(e)) from None
    try:
        server = TaggerServer(workspace, host, port, start_episode=names.index(episode) if episode else 0)
    except OSError as e:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror or e}); "
                        f"choose another --port (0 for any free one)") from None
    if not server.loopback:
        click.echo(f"Warning: listening on {host}, not only this machine; the token below guards writes.", err=True)
    click.echo(f"Tagging {os.path.basename(series_path)} ({len(names)} episodes). Open: {server.url}", nl=True)
    click.echo("Every change is saved at once; Ctrl+C stops the tagger.")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped; the tags are saved.")
    finally:
        server.server_close()
