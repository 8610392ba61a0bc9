"""The documentation: README.md is a front door of at most 250 lines whose quick start is what the project runs
(the app's install and start, `bash tests/run.sh`, which .ci/run runs verbatim), and every relative link in
README.md, CHANGELOG.md and docs/*.md points to a file that exists and, where it names a heading (#anchor), to a
heading that file has (GitHub's anchors)."""

import glob
import os
import re

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 250
INSTALL_AND_START = "python -m pip install -r requirements.txt && python app.py"
RUN_TESTS = "bash tests/run.sh"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def documents():
    found = ["README.md", "CHANGELOG.md"] + sorted(os.path.relpath(p, ROOT)
                                                   for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return [path for path in found if os.path.exists(os.path.join(ROOT, path))]


def prose(text):
    """The text outside fenced code blocks and inline code (a link written as code is not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text):
    seen, result = {}, set()
    for heading in re.findall(r"^#{1,6} (.+?)#*\s*$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M):
        slug = anchor(heading)
        result.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return result


def broken_links(path, text):
    """[(link, why)] for every relative link of the document at path (relative to the repository) that points to
    no file, or to a heading its markdown file does not have."""
    broken = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, fragment = target.partition("#")
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(path), file)) if file else \
            os.path.join(ROOT, path)
        if not os.path.exists(resolved):
            broken.append((target, "no such file"))
        elif fragment and resolved.endswith(".md") and fragment not in anchors(open(resolved, encoding="utf-8").read()):
            broken.append((target, "no such heading"))
    return broken


def test_the_readme_is_a_front_door():
    lines = read("README.md").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the depth into docs/"


def test_the_readme_quick_start_is_what_the_project_runs():
    """The two commands of the quick start, exactly: the app's install and start, and the tests' command, which
    is what .ci/run runs and what tests/run.sh is."""
    readme = read("README.md")
    assert INSTALL_AND_START in readme and RUN_TESTS in readme
    assert RUN_TESTS in [line.strip() for line in read(".ci/run").splitlines()]
    assert os.path.exists(os.path.join(ROOT, "app.py")) and os.path.exists(os.path.join(ROOT, "requirements.txt"))
    assert "python -m pytest" in read("tests/run.sh")


@pytest.mark.parametrize("path", documents())
def test_every_relative_link_points_to_what_exists(path):
    assert not broken_links(path, read(path)), broken_links(path, read(path))


def test_the_documents_are_found():
    found = documents()
    assert "README.md" in found and len([p for p in found if p.startswith("docs")]) >= 10, found


def test_the_link_check_can_fail():
    text = ("[a file](docs/no-such-file.md), [a heading](docs/families.md#no-such-heading), "
            "[fine](docs/families.md#how-to-add-a-family), ![a picture](assets/no-such.png), "
            "[web](https://example.com/x.md), `[code](not/a/link.md)`, [here](#nowhere)\n# A title\n")
    assert sorted(broken_links("README.md", text)) == [
        ("#nowhere", "no such heading"), ("assets/no-such.png", "no such file"),
        ("docs/families.md#no-such-heading", "no such heading"), ("docs/no-such-file.md", "no such file")]
    assert broken_links("docs/page.md", "[up](../README.md), [same folder](families.md)") == []
    assert broken_links("docs/page.md", "[wrong folder](docs/families.md)") == [("docs/families.md", "no such file")]


def test_github_anchors():
    assert anchor("Result JSON (`\"schema\": 2`)") == "result-json-schema-2"
    assert anchor("The paper's shapes (`--suite paper`)") == "the-papers-shapes---suite-paper"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
