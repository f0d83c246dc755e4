from tool import render_table


def test_renders_aligned_columns():
    lines = render_table([["a", "1"], ["bbb", "22"]], headers=["name", "n"]).splitlines()
    assert lines[0].split() == ["name", "n"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[-1].split() == ["bbb", "22"]
    # columns are aligned: every row has the same width
    assert len({len(line) for line in lines}) == 1
