"""Healing battery: inject a fault into a working home, run `heal DESCRIPTION`, count what is diagnosed and fixed.

The base home (built once): the bundled demo site served from a temporary folder on 127.0.0.1 and crawled with
the real embedder into the embedded Qdrant store, and ``word_count`` deployed through the gates (real sandbox)
with a recorded example. Each fault gets a copy of that home:

1. broken tool: a commit makes ``word_count`` add 1 (its tests and its example fail);
2. example output changed: a commit stops joining hyphenated words (its tests still pass, its recorded
   example ``well-known tools`` -> 2 now returns 3);
3. pages vanished: four of the five pages are deleted from the site;
4. alias to an empty collection: another model's empty collection is opened and activated;
5. wrong embedder setting: the home is opened with ``EVORAG_EMBEDDER=onnx`` (the index holds MiniLM's vectors);
6. unmet dependency: ``word_count`` gets a requirement (``tinywords``, a wheel built here into a local wheel
   house, the only index pip sees) and its lock, whose environment is not installed, as after restoring a home
   without EVORAG_HOME/envs.

``heal`` runs through the service with a replayed model whose only reply is the good tool (used by the tool
faults). Diagnosed: the check the fault should trip fails before the fix, and the description's target is in
``about``. Fixed: after the proposed fix (applied by heal through its gate or approval; for a configuration
finding, the proposed setting applied by this script), the same check passes.

    python bench/bench_heal_faults.py
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from evorag.agents.model_clients import replay_client
from evorag.tools.approvals import PolicyApprover, TerminalApprover
from evorag.tools.stores import store_from_settings

from evorag.demo import DEMO_SITE
from evorag.service import CrawlRequest, Evorag

ROOT = Path(__file__).resolve().parent.parent
GOOD_TOOL = (ROOT / "tests" / "candidates" / "good_word_count" / "tool.py").read_text()
TOOL = GOOD_TOOL.replace('_WORD = re.compile', 'EXAMPLES = [{"text": "well-known tools"}]\n\n_WORD = re.compile', 1)
TESTS = (ROOT / "tests" / "candidates" / "good_word_count" / "test_word_count.py").read_text()
SOURCE = "demo"
PAGES_TO_DELETE = ("configuration.html", "crawling.html", "faq.html", "search.html")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path, port: int = 0):
    """Serve ``directory`` on 127.0.0.1; every fault's copy of the site is served on the base site's port, so the
    addresses in the copied catalog stay right."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build_base(home: Path, base_url: str) -> None:
    candidate = home.parent / "candidate"
    candidate.mkdir()
    (candidate / "tool.py").write_text(TOOL)
    (candidate / "test_word_count.py").write_text(TESTS)
    with Evorag(home=home, allow_private=True, evolutions_per_hour=100) as rag:
        report = rag.crawl(CrawlRequest(url=base_url + "index.html", source=SOURCE, allow_private=True))
        assert report.pages_indexed == 5, report
        outcome = rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True))
        assert outcome.status == "deployed", outcome
        assert rag.registry.get("word_count").examples, "no example recorded at deploy"


def _commit_tool(rag, text: str, message: str) -> None:
    repository = rag.evolution.repository
    (repository.tools_dir / "word_count" / "tool.py").write_text(text)
    repository.repo.git.add("-A")
    repository.repo.index.commit(message)
    rag.registry.refresh()


def _wheel_house(root: Path) -> Path:
    """A local package index: one wheel of a tiny project ``tinywords`` 0.5, built here without any index."""
    project, house = root / "tinywords", root / "house"
    (project / "tinywords").mkdir(parents=True)
    (project / "tinywords" / "__init__.py").write_text("def words(n):\n    return ['zero', 'one', 'two'][n]\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinywords"\nversion = "0.5"\n[tool.setuptools]\npackages = ["tinywords"]\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                    "--wheel-dir", str(house), str(project)], check=True, env=_index_env(None),
                   capture_output=True, timeout=300)
    return house


def _index_env(house: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    if house is not None:
        env["PIP_FIND_LINKS"] = str(house)
    return env


def _environment_lost(rag) -> None:
    """``word_count`` needs tinywords (its requirement, lock and the union lock committed as a deploy writes
    them), and its environment is gone, as after restoring a home without EVORAG_HOME/envs."""
    from evorag.tools.tool_envs import LOCK_FILE, LockedDistribution, format_lock, write_union_files

    house = Path(os.environ["PIP_FIND_LINKS"])
    wheel = next(house.glob("tinywords-0.5-*.whl"))
    lock = format_lock([LockedDistribution("tinywords", "0.5", (hashlib.sha256(wheel.read_bytes()).hexdigest(),))])
    repository = rag.evolution.repository
    (repository.tools_dir / "word_count" / "requirements.txt").write_text("tinywords==0.5\n")
    (repository.tools_dir / "word_count" / LOCK_FILE).write_text(lock)
    write_union_files(repository.root, repository.tools_dir)
    repository.repo.git.add("-A")
    repository.repo.index.commit("word_count needs tinywords")
    rag.registry.refresh()


@contextlib.contextmanager
def _package_index(house: Path):
    """pip (run by heal in this process) sees the local wheel house only: nothing reaches a registry."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_index_env(house))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


FAULTS = [
    # name, description, the check it trips, the target `about` should name, settings, inject(rag, home, site)
    ("broken tool", "word counts are off by one", "tool:word_count", "tool word_count", {},
     lambda rag, home, site: _commit_tool(rag, GOOD_TOOL.replace("return len(words)", "return 1 + len(words)")
                                          .replace("_WORD = re.compile", 'EXAMPLES = [{"text": "well-known tools"}]'
                                                   "\n\n_WORD = re.compile", 1), "manual edit: off by one")),
    ("example output changed", "word_count splits well-known into two words", "tool:word_count", "tool word_count",
     {}, lambda rag, home, site: _commit_tool(rag, TOOL.replace("['’-]", "['’]"), "manual edit: no hyphens")),
    ("pages vanished", "the demo pages are gone", f"source:{SOURCE}", f"source {SOURCE}", {},
     lambda rag, home, site: [(site / page).unlink() for page in PAGES_TO_DELETE]),
    ("alias to an empty collection", "search finds nothing any more", "index_alias", None, {},
     lambda rag, home, site: store_from_settings(rag.settings).open("some-other-model", 384)),
    ("wrong embedder setting", "search results look random", "embedder_setting", None, {"embedder": "onnx"},
     lambda rag, home, site: None),
    ("unmet dependency", "word_count cannot start", "environment", "tool word_count", {},
     lambda rag, home, site: _environment_lost(rag)),
]
# The configuration a finding proposes, as this script applies it (heal proposes, an operator sets it).
CONFIG_FIXES = {"embedder_setting": {"embedder": "local"}}


def run_fault(root: Path, base_home: Path, site_template: Path, port: int, house: Path, fault) -> dict:
    name, description, check_name, target, settings, inject = fault
    folder = root / name.replace(" ", "-")
    home, site = folder / "home", folder / "site"
    shutil.copytree(base_home, home, symlinks=True)
    shutil.copytree(site_template, site)
    started = time.monotonic()
    with serve(site, port), _package_index(house):
        with Evorag(home=home, allow_private=True, evolutions_per_hour=100) as rag:
            inject(rag, home, site)
        reply = f"The tool was changed; restoring its counting.\n\n```python tool.py\n{TOOL}```"
        approver = TerminalApprover(ask=lambda prompt: "y", show=lambda text: None)
        with Evorag(home=home, allow_private=True, evolutions_per_hour=100, **settings) as rag:
            report = asyncio.run(rag.aheal(description, approver=approver, model_client=replay_client([reply] * 3)))
        before = {c.name: c for c in report.before}
        after = {c.name: c for c in report.after}
        about = [t.label() for t in report.about]
        diagnosed = check_name in before and not before[check_name].ok and (target is None or target in about)
        fixed = diagnosed and check_name in after and after[check_name].ok
        if diagnosed and not fixed and check_name in CONFIG_FIXES:
            with Evorag(home=home, allow_private=True, evolutions_per_hour=100, **CONFIG_FIXES[check_name]) as rag:
                checks = {c.name: c for c in asyncio.run(rag.ahealth_checks())}
            fixed = checks[check_name].ok
    finding = before.get(check_name)
    return {"fault": name, "description": description, "about": ", ".join(about) or "-",
            "diagnosed": diagnosed, "fixed": fixed,
            "fix": (f"{finding.fix_kind}: {finding.fix}" if finding and finding.fix_kind else "-"),
            "actions": [{k: a.get(k) for k in ("action", "status", "installed", "reason") if a.get(k)}
                        for a in report.actions],
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="evorag-heal-battery-") as tmp:
        root = Path(tmp)
        site_template = root / "site"
        shutil.copytree(DEMO_SITE, site_template)
        (site_template / "sitemap.xml").unlink()
        house = _wheel_house(root)
        base_home = root / "base" / "home"
        base_home.parent.mkdir()
        started = time.monotonic()
        with serve(site_template) as base_url:
            build_base(base_home, base_url)
        port = int(base_url.rsplit(":", 1)[1].strip("/"))
        print(f"base home built in {time.monotonic() - started:.0f} s", file=sys.stderr)
        only = set(sys.argv[1:])
        for fault in FAULTS:
            if only and fault[0] not in only:
                continue
            rows.append(run_fault(root, base_home, site_template, port, house, fault))
            print(rows[-1], file=sys.stderr)
    print("| fault | description | about | diagnosed | fixed | proposed fix |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['fault']} | \"{row['description']}\" | {row['about']} | {'yes' if row['diagnosed'] else 'no'} "
              f"| {'yes' if row['fixed'] else 'no'} | {row['fix']} |")
    print(f"\ndiagnosed {sum(r['diagnosed'] for r in rows)}/{len(rows)}, fixed {sum(r['fixed'] for r in rows)}/"
          f"{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
