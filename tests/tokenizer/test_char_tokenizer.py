import pytest

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.char import BOS, CharTokenizer


def test_vocab_matches_microgpt_convention():
    tok = CharTokenizer.from_text(["emma", "ava"])
    assert tok.chars == ["a", "e", "m", "v"]
    assert tok.bos_id == 4 and tok.vocab_size == 5
    assert tok.encode("emma", prepend_bos=True) == [4, 1, 2, 2, 0]
    assert tok.decode([4, 1, 2, 2, 0]) == BOS + "emma"


def test_unknown_character_is_a_clear_error():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UserError, match=r"2 character\(s\) not in the tokenizer's vocabulary: 'x', 'é'"):
        tok.encode("abxé")
    with pytest.raises(UserError, match="outside"):
        tok.decode([99])


def test_empty_text_and_save_load(tmp_path):
    with pytest.raises(UserError, match="empty"):
        CharTokenizer.from_text("")
    tok = CharTokenizer.from_text("héllo 👋\n")
    tok.save(tmp_path / "c.json")
    back = CharTokenizer.load(tmp_path / "c.json")
    assert back.chars == tok.chars and back.encode("hé👋") == tok.encode("hé👋")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(UserError, match="not a character tokenizer"):
        CharTokenizer.load(tmp_path / "bad.json")
