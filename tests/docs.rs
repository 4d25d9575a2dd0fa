//! The documentation stays true: every relative link of README.md and docs/ resolves (file and
//! heading), and docs/configs.md names every key of the config.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::common::repo_root;

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn unfenced(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    text.lines().enumerate().filter_map(move |(i, line)| {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            return None;
        }
        (!fenced).then_some((i + 1, line))
    })
}

/// The lines of `text` outside fenced code blocks, with inline code spans removed.
fn prose(text: &str) -> Vec<(usize, String)> {
    unfenced(text)
        .map(|(number, line)| {
            // Text between backticks is code; a pair of spans alternates in and out.
            let outside: String = line
                .split('`')
                .enumerate()
                .filter(|(k, _)| k % 2 == 0)
                .map(|(_, part)| part)
                .collect();
            (number, outside)
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    let mut text = heading.replace('`', "");
    // `[label](target)` reads as its label.
    while let (Some(open), Some(mid)) = (text.find('['), text.find("](")) {
        let Some(close) = text[mid..].find(')').map(|c| mid + c) else {
            break;
        };
        if open > mid {
            break;
        }
        text = format!(
            "{}{}{}",
            &text[..open],
            &text[open + 1..mid],
            &text[close + 1..]
        );
    }
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (a repeated heading's get `-1`, `-2`, ...).
fn anchors(page: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut anchors = HashSet::new();
    for (_, line) in unfenced(&text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug = slug(line[hashes..].trim().trim_end_matches('#'));
        let n = seen.entry(slug.clone()).or_default();
        anchors.insert(match *n {
            0 => slug,
            k => format!("{slug}-{k}"),
        });
        *n += 1;
    }
    anchors
}

/// The targets of `[text](target)` and `![alt](target)` in a line.
fn link_targets(line: &str) -> Vec<String> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let end = rest.find([')', ' ']).unwrap_or(rest.len());
            (end > 0).then(|| rest[..end].to_owned())
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (number, line) in prose(&text) {
            for target in link_targets(&line) {
                let external = target.split_once(':').is_some_and(|(scheme, _)| {
                    !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphabetic())
                });
                if external {
                    continue;
                }
                checked += 1;
                let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
                let path = match file {
                    "" => page.clone(),
                    file => page.parent().unwrap().join(file),
                };
                let name = page.strip_prefix(&root).unwrap().display().to_string();
                if !path.exists() {
                    broken.push(format!("{name}:{number}: no file {target}"));
                } else if !fragment.is_empty()
                    && path.extension().is_some_and(|e| e == "md")
                    && !anchors(&path).contains(fragment)
                {
                    broken.push(format!("{name}:{number}: no heading for {target}"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_config_reference_names_every_key() {
    let reference = std::fs::read_to_string(repo_root().join("docs/configs.md")).unwrap();
    let missing: Vec<String> = quill_train::RunConfig::keys()
        .into_iter()
        .filter(|key| !reference.contains(&format!("`{key}`")))
        .collect();
    assert!(missing.is_empty(), "docs/configs.md lacks {missing:?}");
}

#[test]
fn the_readme_is_a_front_page() {
    let lines = std::fs::read_to_string(repo_root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the rest belongs in docs/"
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("Speed against PyTorch (CPU)"),
        "speed-against-pytorch-cpu"
    );
    assert_eq!(
        slug("`quill-cpu sweep`: the [file](x.md)"),
        "quill-cpu-sweep-the-file"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#b) and ![p](p.png)"),
        ["docs/a.md#b", "p.png"]
    );
}
