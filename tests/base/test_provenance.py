"""Where a result came from: the commit of the running code, from its checkout or from pip's install record."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nanochat_next.provenance import run_metadata, source_checkout_state, state_from_direct_url


def test_pip_vcs_install_names_its_commit():
    info = {"url": "https://github.com/ricardofrantz/nanochat-next",
            "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "main"}}
    assert state_from_direct_url(info) == {"commit": "a" * 40, "dirty": False}
    assert state_from_direct_url(None) == {"commit": None, "dirty": None}
    assert state_from_direct_url({"url": "https://example.com/x.whl", "archive_info": {}}) == \
        {"commit": None, "dirty": None}


def test_directory_install_uses_that_checkout_only_if_it_is_one(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], cwd=repo, check=True)
    state = state_from_direct_url({"url": repo.as_uri(), "dir_info": {}})
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (repo / "f").write_text("changed")
    assert state_from_direct_url({"url": repo.as_uri(), "dir_info": {}})["dirty"] is True
    inside = repo / "sub"  # a folder inside some other repository is not that repository's source
    inside.mkdir()
    assert source_checkout_state(inside) == {"commit": None, "dirty": None}


def test_run_metadata_here_names_this_checkout():
    repo = Path(__file__).resolve().parents[2]
    meta = run_metadata()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert meta["git"]["commit"] == head
    assert "cudnn" in meta["machine"]


def test_the_repository_url_is_pyprojects():
    import tomllib

    from nanochat_next.provenance import repository_url

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert repository_url() == pyproject["project"]["urls"]["Repository"]


def test_committed_results_are_found_beside_the_checkout(tmp_path):
    from nanochat_next.provenance import committed_results

    found = committed_results(tmp_path)
    assert found == Path(__file__).resolve().parents[2] / "results" and any(found.glob("ablate_*.json"))
