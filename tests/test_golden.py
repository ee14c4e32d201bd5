"""Golden datasets in JSONL, YAML and CSV."""
import pytest

from replaygate.errors import InputError
from replaygate.sources.golden import load_golden


def test_jsonl(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"id": "a", "input": "What?", "expected": "x", "context": ["doc"]}\n\n'
                 '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],'
                 ' "vars": {"k": 1}}\n')
    a, b = load_golden(p)
    assert a.id == "a" and a.reference == "x" and a.context == ["doc"]
    assert a.messages[0].role == "user" and a.last_user_text() == "What?"
    assert b.id == "row00002" and [m.role for m in b.messages] == ["system", "user"]
    assert b.vars == {"k": 1} and b.metadata["source"]["line"] == 3


def test_yaml_lines(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text("- {id: one, input: hi, expected: hi}\n- id: two\n  input: yo\n  metadata: {tier: gold}\n")
    one, two = load_golden(p)
    assert two.metadata["tier"] == "gold" and two.metadata["source"]["line"] == 2


def test_csv_with_vars_and_json_context(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text('id,input,expected,vars.name,context\n'
                 'c1,"Hello, there",Hi,Ann,"[""d1"", ""d2""]"\n'
                 'c2,Bye,,Bob,\n')
    c1, c2 = load_golden(p)
    assert c1.messages[0].content == "Hello, there" and c1.vars == {"name": "Ann"}
    assert c1.context == ["d1", "d2"] and c2.reference is None


@pytest.mark.parametrize("name,text,line,msg", [
    ("g.jsonl", '{"input": "a"}\n{"input": "b"\n', 2, "invalid JSON"),
    ("g.jsonl", '{"input": "a", "expectd": "x"}\n', 1, "unknown key"),
    ("g.jsonl", '{"id": "x", "input": "a"}\n{"id": "x", "input": "b"}\n', 2, "duplicate case id"),
    ("g.jsonl", '{"expected": "a"}\n', 1, "either 'input' or 'messages'"),
    ("g.jsonl", '{"messages": [{"content": "no role"}]}\n', 1, "role"),
    ("g.yaml", "- input: a\n- [1, 2]\n", 2, "must be a mapping"),
    ("g.yaml", "input: a\n", 1, "must be a list"),
    ("g.csv", "id,input\nx,a,extra\n", 2, "more cells"),
])
def test_bad_rows_name_file_and_line(tmp_path, name, text, line, msg):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_golden(p)
    assert exc.value.file == str(p) and exc.value.line == line and msg in str(exc.value)


def test_empty_and_unknown_type(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no rows"):
        load_golden(tmp_path / "e.jsonl")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(InputError, match="unknown golden file type"):
        load_golden(tmp_path / "g.txt")
