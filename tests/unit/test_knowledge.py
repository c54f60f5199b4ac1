"""KnowledgeBase: loading, section splitting, ranked retrieval, read(), user folders, lessons."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from evoagent.errors import ConfigError, EvoagentError
from evoagent.knowledge import BUILTIN_DIR, KnowledgeBase, KnowledgeError, Lesson
from evoagent.knowledge.base import slugify, split_sections
from evoagent.knowledge.cli import add_kb_parser


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase()


def _top(kb: KnowledgeBase, query: str, k: int = 3) -> list[tuple[str, str]]:
    return [(h.doc, h.section) for h in kb.search(query, k=k)]


@pytest.mark.parametrize(("query", "doc", "section"), [
    ("skip fully masked blocks in causal attention", "causal-masking", "skip-fully-masked-blocks-the-two-stage-loop"),
    ("register spills on Hopper", "static-profile", "spills-stack-local-stl-ldl"),
    ("share K/V across query heads", "gqa", "share-k-v-loads-across-the-query-heads-of-a-group"),
    ("fold log2(e) into the softmax scale and use exp2", "online-softmax",
     "the-exp2-form-and-folding-log2-e-into-the-scale"),
    ("tensor memory TMEM on Blackwell", "blackwell", "tcgen05-mma-and-tensor-memory-tmem"),
    ("two-CTA MMA", "blackwell", "two-cta-mma-cta-group-2"),
    ("ping-pong scheduling between warpgroups", "hopper", "ping-pong-and-intra-warpgroup-overlap"),
    ("setmaxnreg register budgets warp specialization", "hopper", "warp-specialization-and-register-budgets"),
    ("what did AVO's evolved kernel change", "flashattention", "what-avo-s-evolved-kernel-changed"),
    ("persistent kernel tail effect", "persistent-kernels", "why-persistence-helps"),
    ("FP8 incoherent processing Hadamard", "fp8", "accuracy-block-scaling-and-incoherent-processing"),
    ("Loop-carried variable acc has initial type fp32 but is re-assigned to fp16", "triton-errors",
     "loop-carried-variable-has-initial-type-but-is-re-assigned-to"),
    ("shared memory out of resources", "triton-errors", "outofresources-shared-memory"),
    ("HGMMA missing from the SASS", "static-profile", "tensor-core-instructions-present-or-missing"),
    ("num_warps num_stages pipelining", "triton-programming", "num-warps-num-stages-and-the-loop-pipeliner"),
])
def test_the_right_section_ranks_in_the_top_three(kb: KnowledgeBase, query: str, doc: str, section: str) -> None:
    assert (doc, section) in _top(kb, query), _top(kb, query)


def test_every_topic_of_the_issue_has_a_builtin_document(kb: KnowledgeBase) -> None:
    names = {d.name for d in kb.documents}
    assert names >= {"triton-programming", "online-softmax", "causal-masking", "gqa", "hopper", "blackwell",
                     "flashattention", "persistent-kernels", "fp8", "static-profile", "triton-errors"}
    assert all(len(d.sections) >= 4 for d in kb.documents if d.name != "lessons")


def test_search_results_are_sorted_positive_and_carry_a_snippet(kb: KnowledgeBase) -> None:
    hits = kb.search("online softmax running max rescale", k=5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score > 0 and h.snippet and len(h.snippet) <= 240 for h in hits)
    assert all(kb.read(h.doc, h.section) for h in hits)


def test_a_query_of_stopwords_or_unknown_words_finds_nothing(kb: KnowledgeBase) -> None:
    assert kb.search("the of and") == []
    assert kb.search("zzzqqq xyzzy") == []


def test_search_rejects_a_non_positive_k(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        kb.search("softmax", k=0)


def test_read_returns_the_document_or_one_section(kb: KnowledgeBase) -> None:
    whole = kb.read("gqa")
    assert whole == (BUILTIN_DIR / "gqa.md").read_text()
    section = kb.read("gqa", "testing-gqa")
    assert section.startswith("## Testing GQA\n") and section.strip() in whole
    assert kb.read("gqa", "Testing GQA") == section  # the heading works too, any case
    assert kb.read("gqa", "testing gqa") == section


def test_read_of_an_unknown_document_names_the_known_ones(kb: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeError, match="unknown knowledge document 'nope'; known documents: .*gqa"):
        kb.read("nope")
    err = KnowledgeError("x")
    assert isinstance(err, LookupError) and isinstance(err, EvoagentError)


def test_read_of_an_unknown_section_lists_the_documents_sections(kb: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeError, match="unknown section 'warp' in document 'gqa'; its sections: overview"):
        kb.read("gqa", "warp")


def test_sections_split_on_level_two_headings_outside_code_fences() -> None:
    text = "# Title\n\nintro\n\n## First\n\none\n```\n## not a heading\n```\n\n## First\n\ntwo\n"
    title, sections = split_sections("doc", text)
    assert title == "Title"
    assert [(s.id, s.title) for s in sections] == [("overview", "Title"), ("first", "First"), ("first-2", "First")]
    assert "## not a heading" in sections[1].text
    assert sections[2].text == "two"


def test_a_comment_inside_a_code_fence_is_not_taken_for_the_title() -> None:
    title, sections = split_sections("notes", "```python\n# not a title\n```\n\n## Only\n\nbody\n")
    assert title == "notes"
    assert [s.id for s in sections] == ["overview", "only"] and "# not a title" in sections[0].text


def test_slugify_makes_lowercase_ids() -> None:
    assert slugify("Skip fully masked blocks: the two-stage loop") == "skip-fully-masked-blocks-the-two-stage-loop"
    assert slugify("???") == "section"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_user_folders_are_loaded_searched_and_readable(tmp_path: Path) -> None:
    _write(tmp_path / "notes" / "deep", "quirks.md", "# Our GPU quirks\n\n## Flux capacitor\n\nThe flux capacitor "
           "needs BLOCK_N = 32 on our cluster.\n")
    kb = KnowledgeBase(paths=[tmp_path / "notes"])
    assert kb.search("flux capacitor", k=1)[0].doc == "quirks"
    assert "BLOCK_N = 32" in kb.read("quirks", "flux-capacitor")
    assert any(d.name == "gqa" for d in kb.documents)  # built-ins stay
    only = KnowledgeBase(paths=[str(tmp_path / "notes" / "deep" / "quirks.md")], builtin=False)
    assert [d.name for d in only.documents] == ["quirks"]


def test_a_user_document_replaces_the_builtin_of_the_same_name(tmp_path: Path) -> None:
    _write(tmp_path, "gqa.md", "# Local GQA notes\n\n## Ours\n\nWe use groups of 8.\n")
    kb = KnowledgeBase(paths=[tmp_path])
    assert kb.read("gqa") == "# Local GQA notes\n\n## Ours\n\nWe use groups of 8.\n"
    assert "gqa-pack-heads" not in {r.id for r in kb.recipes()}


@pytest.mark.parametrize("problem", ["missing", "empty", "not-markdown", "duplicate"])
def test_bad_user_paths_are_config_errors(tmp_path: Path, problem: str) -> None:
    if problem == "missing":
        paths, match = [tmp_path / "nowhere"], "is not a folder or a .md file"
    elif problem == "empty":
        (tmp_path / "empty").mkdir()
        paths, match = [tmp_path / "empty"], "holds no .md files"
    elif problem == "not-markdown":
        paths, match = [_write(tmp_path, "notes.txt", "x")], "is not a folder or a .md file"
    else:
        paths = [_write(tmp_path / "a", "x.md", "# A\n"), _write(tmp_path / "b", "x.md", "# B\n")]
        match = "knowledge document name 'x' is used twice"
    with pytest.raises(ConfigError, match=match):
        KnowledgeBase(paths=paths)


def test_a_malformed_recipe_in_a_user_document_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.md", '# Bad\n\n## R\n\n```recipe\nid = "x"\ntitle = "t"\nkind = "edit"\n```\n')
    with pytest.raises(ConfigError, match=r"bad\.md: recipe 'x': an 'edit' recipe needs at least one"):
        KnowledgeBase(paths=[path])


def test_duplicate_recipe_ids_are_rejected(tmp_path: Path) -> None:
    block = '```recipe\nid = "tile-64x64-4warp"\ntitle = "t"\nkind = "param"\n[params]\nBLOCK_M = 64\n```\n'
    path = _write(tmp_path, "dup.md", f"# Dup\n\n## R\n\n{block}")
    with pytest.raises(ConfigError, match="recipe id 'tile-64x64-4warp' appears twice"):
        KnowledgeBase(paths=[path])


def test_lessons_are_searchable_and_readable_as_their_own_document(kb: KnowledgeBase) -> None:
    lessons = [Lesson(run="r1", trial_id=3, text="trial 3: recipe tile-64x64-4warp -> incorrect (mask bug)"),
               Lesson(run="r1", trial_id=4, text="trial 4: warpspecialized zebra loop -> committed, +2.1%")]
    with_lessons = kb.with_lessons(lessons)
    hit = with_lessons.search("warpspecialized zebra", k=1)[0]
    assert (hit.doc, hit.section) == ("lessons", "r1-4")
    assert "committed, +2.1%" in with_lessons.read("lessons", "r1-4")
    assert "trial 3" in with_lessons.read("lessons")
    assert "lessons" not in {d.name for d in kb.documents}  # the original is unchanged
    replaced = with_lessons.with_lessons([Lesson(run="r2", trial_id=1, text="only this one")])
    assert [s.id for s in next(d for d in replaced.documents if d.name == "lessons").sections] == ["r2-1"]
    assert "lessons" not in {d.name for d in with_lessons.with_lessons([]).documents}


def test_a_copy_with_more_lessons_tokenizes_only_the_new_ones(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from evoagent.knowledge import base

    (tmp_path / "guide.md").write_text("# Guide\n\n## Tiles\n\nUse 128x64 tiles.\n")
    kb = KnowledgeBase(paths=[tmp_path], builtin=False)
    seen: list[str] = []
    real = base.tokenize
    monkeypatch.setattr(base, "tokenize", lambda texts: seen.extend(texts) or real(texts))
    first = [Lesson(run="r", trial_id=1, text="zebra stripes")]
    assert kb.with_lessons(first).search("zebra", k=1)[0].section == "r-1"
    second = kb.with_lessons([*first, Lesson(run="r", trial_id=2, text="okapi spots")])
    assert second.search("okapi", k=1)[0].section == "r-2" and second.search("tiles", k=1)[0].doc == "guide"
    indexed = [t for t in seen if "Lessons from trials" in t]  # queries and snippets aside
    assert len(indexed) == 2 and "zebra stripes" in indexed[0] and "okapi spots" in indexed[1]
    assert not any(t.startswith("Tiles\nTiles") for t in seen)  # the documents' index is shared, not rebuilt


def test_a_search_costs_only_the_lessons_a_copy_adds_and_older_copies_keep_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evoagent.knowledge import base

    (tmp_path / "guide.md").write_text("# Guide\n\n## Tiles\n\nUse 128x64 tiles.\n")
    kb = KnowledgeBase(paths=[tmp_path], builtin=False)
    lessons = [Lesson(run="r", trial_id=i, text=f"trial {i}: zebra {i}") for i in range(1, 201)]
    older = kb.with_lessons(lessons[:100])
    assert older.search("zebra", k=1)[0].doc == "lessons"
    made: list[Lesson] = []
    real = base._lesson_section
    monkeypatch.setattr(base, "_lesson_section", lambda lesson, taken: made.append(lesson) or real(lesson, taken))
    newer = kb.with_lessons(lessons)
    hit = newer.search("zebra 200", k=1)[0]
    assert (hit.section, newer.read("lessons", hit.section)) == ("r-200", "## run r, trial 200\n\ntrial 200: zebra 200\n")
    assert len(made) == 100  # the lessons the newer copy added, each once: never all of them per search
    assert {h.section for h in older.search("zebra 150", k=100)} == {f"r-{i}" for i in range(1, 101)}
    other = kb.with_lessons([Lesson(run="s", trial_id=1, text="okapi")])  # not an extension: its own index
    assert [h.section for h in other.search("okapi zebra", k=5)] == ["s-1"]
    assert newer.search("okapi", k=1) == []


def test_lessons_of_one_trial_get_distinct_sections(kb: KnowledgeBase) -> None:
    lessons = [Lesson(run="r", trial_id=1, text="a"), Lesson(run="r", trial_id=1, text="b")]
    doc = next(d for d in kb.with_lessons(lessons).documents if d.name == "lessons")
    assert [s.id for s in doc.sections] == ["r-1", "r-1-2"]


def _kb_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="evoagent")
    add_kb_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_kb_search_prints_ranked_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert _kb_cli(["kb", "search", "register", "spills", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "static-profile spills-stack-local-stl-ldl" in out
    assert out.count("static-profile") + out.count("hopper") + out.count("cuda-registers") >= 2


def test_kb_search_without_hits_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert _kb_cli(["kb", "search", "zzzqqq"]) == 1
    assert "no section matches 'zzzqqq'" in capsys.readouterr().out


def test_kb_show_prints_a_section_and_fails_on_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert _kb_cli(["kb", "show", "gqa", "testing-gqa"]) == 0
    assert capsys.readouterr().out.startswith("## Testing GQA")
    assert _kb_cli(["kb", "show", "nope"]) == 2
    assert "unknown knowledge document 'nope'" in capsys.readouterr().err


def test_kb_list_shows_documents_with_their_recipes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _write(tmp_path, "mine.md", "# Mine\n\n## Only\n\ntext\n")
    assert _kb_cli(["kb", "--path", str(tmp_path), "--no-builtin", "list"]) == 0
    assert capsys.readouterr().out == "mine: Mine\n    only\n"
    assert _kb_cli(["kb", "list"]) == 0
    assert "load-balance-across-programs  [recipes: causal-heavy-first]" in capsys.readouterr().out


def test_the_cuda_documents_the_brief_names_exist_and_rank_first_for_cuda_questions() -> None:
    from evoagent.targets.attention.agent_text import CUDA_DOCUMENTS

    kb = KnowledgeBase()
    assert set(CUDA_DOCUMENTS) <= {d.name for d in kb.documents}
    for query, doc in [("ldmatrix trans fragment layout", "cuda-mma-fragments"),
                       ("cp.async wait_group commit stages", "cuda-cp-async"),
                       ("mbarrier expect_tx tensor map", "cuda-tma-mbarrier"),
                       ("wgmma descriptor", "cuda-wgmma"),
                       ("launch bounds spill registers", "cuda-registers"),
                       ("shared memory bank conflicts swizzle", "cuda-shared-memory"),
                       ("inline asm constraint volatile", "cuda-inline-ptx")]:
        assert kb.search(query, k=1)[0].doc == doc, query
