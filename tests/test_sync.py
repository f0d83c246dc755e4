"""`evorag sync`: a fixture project's dependency files give names and versions, a docs map and installed package
metadata (a fixture distribution in the project's .venv) give docs URLs, and the docs of exactly those versions
are crawled from a fixture site on 127.0.0.1; what cannot be resolved is reported with the reason. Offline."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from doc_fixtures import page_html, run_cli
from evorag.tools.docs_urls import PYPI_JSON, load_docs_map, resolve
from evorag.tools.project_deps import Dependency, project_dependencies
from sitefixtures import serve

from evorag.errors import UserError
from evorag.service import Evorag


def write_project(project: Path, origin: str) -> Path:
    """A project using widgetlib (locked at 1.2.0, docs from the map), fakepkg (installed in its .venv at 3.1,
    docs from its metadata), nodocs (pinned, its docs URL from the registry), brokenlib (a map URL that is not
    there), unknownlib (no version) and nowhere (no docs URL anywhere); winonly is for Windows only."""
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\n'
        'dependencies = ["widgetlib>=1", "fakepkg>=3", "unknownlib>=1", "winonly==1; sys_platform == \'win32\'"]\n')
    (project / "requirements-dev.txt").write_text(
        "# tools\n-r requirements-extra.txt\nnodocs==2.0  # pinned\nbrokenlib==1.0\nnowhere==1.0\n--hash=sha256:00\n")
    (project / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "widgetlib"\nversion = "1.2.0"\n')
    site_packages = project / ".venv" / "lib" / "python3.11" / "site-packages" / "fakepkg-3.1.dist-info"
    site_packages.mkdir(parents=True)
    (site_packages / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakepkg\nVersion: 3.1\n"
        f"Project-URL: Source, {origin}/fakepkg/source/\nProject-URL: Documentation, {origin}/fakepkg/en/latest/\n")
    docs_map = project.parent / "docs_map.toml"
    docs_map.write_text(
        f'[packages]\nwidgetlib = "{origin}/widgetlib/{{version}}/index.html"\n'
        f'brokenlib = "{origin}/brokenlib/{{version}}/index.html"\n\n'
        '[[hosts]]\nhost = "127.0.0.1"\nreplace = "/en/latest/"\nwith = "/en/{version}/"\n')
    return docs_map


def write_sites(root: Path) -> None:
    for path, (title, body) in {
        "widgetlib/1.2.0/index.html": ("Widgetlib 1.2", "<p>Widgetlib 1.2 spins widgets with spin(rpm).</p>"),
        "widgetlib/1.3.0/index.html": ("Widgetlib 1.3", "<p>Widgetlib 1.3 adds reverse spinning.</p>"),
        "fakepkg/en/3.1/index.html": ("Fakepkg 3.1", "<p>Fakepkg 3.1 fakes packages with fake(name).</p>"),
        "fakepkg/en/latest/index.html": ("Fakepkg latest", "<p>Fakepkg 4.0 dropped fake(name).</p>"),
        "nodocs/2.0/index.html": ("Nodocs 2.0", "<p>Nodocs documents itself through the registry.</p>"),
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(page_html(title, body))
    release = root / "pypi" / "nodocs" / "2.0" / "json"  # PyPI's JSON API for one release
    release.parent.mkdir(parents=True)
    release.write_text(json.dumps({"info": {"project_urls": {"Homepage": "http://127.0.0.1:9/",
                                                             "Documentation": "ORIGIN/nodocs/2.0/"}}}))


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    base = tmp_path_factory.mktemp("sync")
    write_sites(base / "site")
    with serve(base / "site") as site:
        release = base / "site" / "pypi" / "nodocs" / "2.0" / "json"
        release.write_text(release.read_text().replace("ORIGIN", site.origin))
        docs_map = write_project(base / "project", site.origin)
        registry = site.url("/pypi")
        with Evorag(home=base / "home", llm_provider="none") as rag:
            first = rag.sync(base / "project", docs_map=docs_map, allow_private=True, max_pages=5, registry=registry)
            second = rag.sync(base / "project", docs_map=docs_map, allow_private=True, max_pages=5, registry=registry)
            hits = {name: rag.search("what does it do", source=name, limit=3)
                    for name in ("widgetlib@1.2.0", "fakepkg@3.1")}
            sources = {record.name: record.version_labels for record in rag.sources()}
    return site.origin, first, second, hits, sources


def test_exactly_the_used_versions_are_indexed(synced):
    origin, first, _, hits, _ = synced
    entries = {entry.name: entry for entry in first.entries}
    assert set(entries) == {"widgetlib", "fakepkg", "unknownlib", "nodocs", "brokenlib", "nowhere"}  # no winonly
    widget, fake = entries["widgetlib"], entries["fakepkg"]
    assert (widget.status, widget.version, widget.url, widget.via, widget.versioned_url) == (
        "indexed", "1.2.0", f"{origin}/widgetlib/1.2.0/index.html", "docs map", True)
    assert (fake.status, fake.version, fake.url, fake.via, fake.versioned_url) == (
        "indexed", "3.1", f"{origin}/fakepkg/en/3.1/", "package metadata", True)
    registry = entries["nodocs"]
    assert (registry.status, registry.version, registry.url, registry.via) == (
        "indexed", "2.0", f"{origin}/nodocs/2.0/", "package registry")
    assert all("1.3" not in hit.chunk.text for hit in hits["widgetlib@1.2.0"])
    assert any("spin(rpm)" in hit.chunk.text and hit.chunk.version == "1.2.0" for hit in hits["widgetlib@1.2.0"])
    assert any("fake(name)" in hit.chunk.text and "4.0" not in hit.chunk.text for hit in hits["fakepkg@3.1"])


def test_what_cannot_be_resolved_or_crawled_is_reported_with_the_reason(synced):
    _, first, _, _, sources = synced
    entries = {entry.name: entry for entry in first.entries}
    assert entries["unknownlib"].status == "unresolved" and "no exact version" in entries["unknownlib"].reason
    assert entries["nowhere"].status == "unresolved" and "no documentation URL" in entries["nowhere"].reason
    assert "the registry" in entries["nowhere"].reason
    assert entries["brokenlib"].status == "failed" and entries["brokenlib"].reason
    assert first.to_dict()["totals"] == {"indexed": 3, "present": 0, "failed": 1, "unresolved": 2}
    assert sources == {"widgetlib": ["1.2.0"], "fakepkg": ["3.1"], "nodocs": ["2.0"]}  # the failed one is not left listed, empty


def test_a_second_sync_leaves_indexed_versions_alone(synced):
    _, _, second, _, _ = synced
    statuses = {entry.name: entry.status for entry in second.entries}
    assert statuses["widgetlib"] == statuses["fakepkg"] == statuses["nodocs"] == "present"


def test_the_default_registry_is_pypi():
    assert inspect.signature(Evorag.sync).parameters["registry"].default == PYPI_JSON


def test_dependency_files_are_parsed_as_data(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry.dependencies]\npython = "^3.11"\nExact_Lib = "2.1.0"\nranged = "^1.0"\n'
        'table = { version = "==0.5", optional = true }\n')
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"left-pad": "1.3.0", "@scope/ui": "^2"}}))
    (tmp_path / "package-lock.json").write_text(json.dumps(
        {"packages": {"node_modules/@scope/ui": {"version": "2.4.1"}}}))
    found = {(d.ecosystem, d.name): d.version for d in project_dependencies(tmp_path)}
    assert found == {("python", "exact-lib"): "2.1.0", ("python", "ranged"): None, ("python", "table"): "0.5",
                     ("npm", "left-pad"): "1.3.0", ("npm", "@scope/ui"): "2.4.1"}
    (tmp_path / "requirements.txt").write_text("not a requirement !!\n")
    with pytest.raises(UserError, match="requirements.txt: not a requirement"):
        project_dependencies(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no dependency files"):
        project_dependencies(empty)


def test_read_the_docs_paths_are_pinned_to_the_version(tmp_path):
    docs_map = load_docs_map(tmp_path / "absent.toml")
    project = tmp_path / "project"
    dist = project / ".venv" / "lib" / "python3.11" / "site-packages" / "rtdpkg-1.4.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rtdpkg\nVersion: 1.4\n"
                                   "Project-URL: Documentation, https://rtdpkg.readthedocs.io/en/stable/\n")
    found = resolve(Dependency("rtdpkg", "python", "1.2", "pyproject.toml"), docs_map, project=project)
    assert (found.url, found.versioned) == ("https://rtdpkg.readthedocs.io/en/1.2/", True)
    (tmp_path / "bad.toml").write_text("[packages]\nx = 3\n")
    with pytest.raises(UserError, match="maps names to URL strings"):
        load_docs_map(tmp_path / "bad.toml")


def test_the_cli_refuses_a_folder_without_a_project(tmp_path):
    done = run_cli(tmp_path / "home", "sync", str(tmp_path))
    assert done.returncode == 2 and "no dependency files" in done.stderr
