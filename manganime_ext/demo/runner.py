"""Run the demo's stages in order, resumably, and time them.

A stage that finished leaves ``stages/<name>.json`` (its commands, seconds, when); a rerun skips it,
so a killed demo continues where it stopped. ``force`` runs everything again, ``redo=[names]`` those
stages and every stage after them (their inputs changed). Each
command's output goes to the terminal (the tools' own progress bars) and to ``logs/<stage>.log``.
"""

import os
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional

from manganime_ext.io.json_files import write_json

from .settings import DemoSettings
from .stages import STAGES, Layout, Stage


class DemoError(RuntimeError):
    """A stage's command failed: one line naming the stage, the command and its log."""


def record_path(layout: Layout, stage: Stage) -> str:
    return layout("stages", f"{stage.name}.json")


def is_done(layout: Layout, stage: Stage) -> bool:
    return os.path.isfile(record_path(layout, stage))


def _run_command(command: List[str], log_path: str, env: Dict[str, str]) -> None:
    """Run one command with its output shown live and kept in the stage's log."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk.decode("utf-8", "replace"))
        code = proc.wait()
    if code:
        shown = " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))
        raise DemoError(f"stage failed (exit {code}): {shown[:300]}; see {log_path}")


def run_stage(layout: Layout, stage: Stage, settings: DemoSettings, env: Dict[str, str]) -> float:
    os.makedirs(layout("logs"), exist_ok=True)
    log_path = layout("logs", f"{stage.name}.log")
    if os.path.exists(log_path):
        os.remove(log_path)
    started = time.time()
    commands = []
    for command in stage.commands(layout, settings):
        commands.append(command() if callable(command) else command)
        _run_command(commands[-1], log_path, env)
    if stage.finish is not None:
        stage.finish(layout, settings)
    seconds = time.time() - started
    os.makedirs(layout("stages"), exist_ok=True)
    record = dict(name=stage.name, seconds=round(seconds, 1), finished=time.strftime("%Y-%m-%d %H:%M:%S"),
                  commands=[_shown(c, layout) for c in commands])
    write_json(record_path(layout, stage), record)
    return seconds


def _shown(command: List[str], layout: Layout) -> str:
    """The command as a user would type it from the project root: ``python -m x`` and paths under the output."""
    words = ["python" if i == 0 else w.replace(layout.out + os.sep, "") for i, w in enumerate(command)]
    return " ".join(words)


def run(out: str, settings: DemoSettings, force: bool = False, redo: Iterable[str] = (),
        until: Optional[str] = None) -> Dict[str, float]:
    """Run every stage not done yet (all with ``force``; those named in ``redo``); returns seconds per stage run."""
    layout = Layout(out)
    os.makedirs(layout.out, exist_ok=True)
    env = dict(os.environ)
    if settings.threads:
        env["OMP_NUM_THREADS"] = str(settings.threads)
    redo = set(redo)
    unknown = redo - {s.name for s in STAGES}
    if unknown:
        raise DemoError(f"--redo: no stage named {sorted(unknown)} (stages: {', '.join(s.name for s in STAGES)})")
    timings: Dict[str, float] = {}
    rerun = force  # once a stage runs again, every later stage does too: its inputs changed
    for i, stage in enumerate(STAGES, 1):
        rerun = rerun or stage.name in redo or not is_done(layout, stage)
        if not rerun:
            print(f"[{i}/{len(STAGES)}] {stage.title}: done before, skipped", flush=True)
            continue
        print(f"[{i}/{len(STAGES)}] {stage.title} ...", flush=True)
        timings[stage.name] = run_stage(layout, stage, settings, env)
        print(f"[{i}/{len(STAGES)}] {stage.title}: {timings[stage.name]:.0f} s", flush=True)
        if stage.name == until:
            break
    return timings
