//! Drop-in files: `renewd.d/*.toml` beside the main file (or `--config-dir`),
//! read in lexical order, each adding `[ca.*]`, `[solver.*]` and
//! `[[certificate]]` tables, so packages and configuration management add a
//! certificate by dropping a file.
//!
//! Every file is parsed on its own first, so a syntax or schema error names
//! its file and line, and a name defined in two files is reported with both.
//! The texts are then validated together, as one config, and each problem's
//! line is traced back to the file it came from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{Error, Problem, RawConfig};

/// Where the config comes from: the main file and the drop-in directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The main file.
    pub file: PathBuf,
    /// The drop-in directory (`renewd.d` beside `file` unless given).
    pub drop_ins: PathBuf,
}

impl Location {
    /// `file`, with drop-ins from `dir`, or from `renewd.d` beside `file`.
    #[must_use]
    pub fn new(file: PathBuf, dir: Option<PathBuf>) -> Self {
        let drop_ins = dir.unwrap_or_else(|| {
            file.parent()
                .unwrap_or_else(|| Path::new("."))
                .join("renewd.d")
        });
        Self { file, drop_ins }
    }
}

/// One file's text.
pub(super) struct Source {
    pub(super) path: PathBuf,
    pub(super) text: String,
}

/// Reads the main file and every `*.toml` of the drop-in directory (a missing
/// directory has none), in lexical order.
///
/// # Errors
///
/// [`Error::Read`] naming the file or directory that cannot be read.
pub(super) fn read(location: &Location) -> Result<Vec<Source>, Error> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
    };
    let mut sources = vec![Source {
        path: location.file.clone(),
        text: read(&location.file)?,
    }];
    let entries = match std::fs::read_dir(&location.drop_ins) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(sources),
        Err(source) => {
            return Err(Error::Read {
                path: location.drop_ins.clone(),
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let text = read(&path)?;
        sources.push(Source { path, text });
    }
    Ok(sources)
}

/// Checks each drop-in on its own (syntax, schema, only the tables a drop-in
/// may hold) and the names all files define, then joins the texts into one
/// config text. Returns the text and where each file starts in it.
///
/// # Errors
///
/// [`Error::Parse`] naming a drop-in that is not valid; [`Error::Invalid`]
/// for names defined in two files, each with both places.
pub(super) fn join(sources: &[Source]) -> Result<(String, Vec<Span>), Error> {
    let main = &sources[0].path;
    // Names are only checked across files: without drop-ins, parsing the
    // main file here as well would double the time a large config takes.
    let checked = if sources.len() > 1 { sources } else { &[] };
    let mut defined: HashMap<String, (usize, usize)> = HashMap::new();
    let mut problems = Vec::new();
    for (index, source) in checked.iter().enumerate() {
        let raw: RawConfig = match super::parse_raw(&source.text) {
            Ok(raw) => raw,
            // The main file's errors come from parsing the whole, as before.
            Err(_) if index == 0 => continue,
            Err(e) => {
                return Err(Error::Parse {
                    path: source.path.clone(),
                    message: e.to_string().trim_end().to_owned(),
                });
            }
        };
        let main_only = [
            ("[daemon]", raw.daemon.is_some()),
            ("[cluster]", raw.cluster.is_some()),
        ];
        if let Some((table, _)) = main_only.iter().find(|(_, there)| index > 0 && *there) {
            return Err(Error::Parse {
                path: source.path.clone(),
                message: format!(
                    "{table} belongs in {}; a drop-in may hold [ca.*], [solver.*] and [[certificate]]",
                    main.display()
                ),
            });
        }
        // Byte offsets, turned into line numbers only for a problem: counting
        // newlines for every name made 10,000 certificates take seconds.
        let names = raw
            .ca
            .iter()
            .map(|(name, v)| (format!("ca.{name}"), v.span().start))
            .chain(
                raw.solver
                    .iter()
                    .map(|(name, v)| (format!("solver.{name}"), v.span().start)),
            )
            .chain(raw.certificate.iter().map(|c: &Spanned<_>| {
                (
                    format!("certificate {:?}", c.get_ref().name),
                    c.span().start,
                )
            }));
        for (name, offset) in names {
            match defined.get(&name) {
                Some(&(first, first_offset)) if first != index => {
                    let (line, first_line) = (
                        line_at(&source.text, offset),
                        line_at(&sources[first].text, first_offset),
                    );
                    problems.push(Problem {
                        file: Some(source.path.clone()),
                        line: Some(line),
                        field: name,
                        message: format!(
                            "already defined in {} line {first_line}",
                            sources[first].path.display()
                        ),
                    });
                }
                Some(_) => {} // within one file: the whole's checks report it
                None => {
                    defined.insert(name, (index, offset));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid {
            path: main.clone(),
            problems,
        });
    }
    let mut text = String::new();
    let mut spans = Vec::with_capacity(sources.len());
    for source in sources {
        let first_line = text.matches('\n').count() + 1;
        text.push_str(&source.text);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        spans.push(Span {
            path: source.path.clone(),
            first_line,
        });
    }
    Ok((text, spans))
}

/// Where one file's lines start in the joined text.
pub(super) struct Span {
    path: PathBuf,
    first_line: usize,
}

/// Moves a problem's line in the joined text back to its file and line; the
/// main file's problems keep no file of their own.
pub(super) fn locate(spans: &[Span], mut problem: Problem) -> Problem {
    let Some(line) = problem.line else {
        return problem;
    };
    if let Some((index, span)) = spans
        .iter()
        .enumerate()
        .rev()
        .find(|(_, s)| s.first_line <= line)
    {
        problem.line = Some(line - span.first_line + 1);
        problem.file = (index > 0).then(|| span.path.clone());
    }
    problem
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MAIN: &str = "[daemon]\nstate_dir = \"/var/lib/renewd\"\n\n\
        [ca.le]\ndirectory = \"https://acme.example/dir\"\n\n\
        [solver.web]\ntype = \"http-01\"\nlisten = \"127.0.0.1:80\"\n\n\
        [[certificate]]\nname = \"main\"\ndomains = [\"main.example\"]\n";

    /// A main file and drop-ins `(name, text)` in a fresh directory.
    fn files(drop_ins: &[(&str, &str)]) -> (tempfile::TempDir, Location) {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("renewd.toml");
        std::fs::write(&main, MAIN).unwrap();
        std::fs::create_dir(dir.path().join("renewd.d")).unwrap();
        for (name, text) in drop_ins {
            std::fs::write(dir.path().join("renewd.d").join(name), text).unwrap();
        }
        let location = Location::new(main, None);
        (dir, location)
    }

    fn certificate(name: &str) -> String {
        format!("\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{name}.example\"]\n")
    }

    #[test]
    fn drop_ins_add_tables_in_lexical_order() {
        let b = format!(
            "[solver.files]\ntype = \"http-01\"\nwebroot = \"/var/www\"\n{}",
            certificate("b")
        );
        let (_dir, location) = files(&[
            ("20-b.toml", &b),
            ("10-a.toml", &certificate("a")),
            ("ignored.conf", "not toml at all"),
        ]);
        let config = Config::load(&location).unwrap();
        assert_eq!(config.names(), ["main", "a", "b"]);
        assert!(config.solvers.contains_key("files"));
    }

    #[test]
    fn a_name_defined_in_two_files_names_both() {
        let (dir, location) = files(&[(
            "10-a.toml",
            &format!("# a comment\n{}", certificate("main")),
        )]);
        let err = Config::load(&location).unwrap_err().to_string();
        let drop_in = dir.path().join("renewd.d/10-a.toml");
        assert!(
            err.contains(&format!(
                "{} line 3: certificate \"main\": already defined in {} line 11",
                drop_in.display(),
                location.file.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn large_drop_ins_are_parsed_a_certificate_at_a_time_and_located_alike() {
        // Large enough to be parsed a certificate at a time (config::split).
        let many: String = (0..100).map(|i| certificate(&format!("c{i}"))).collect();
        let with_main = format!("{many}{}", certificate("main"));
        let (dir, location) = files(&[("10-many.toml", &many), ("20-more.toml", &with_main)]);
        let err = Config::load(&location).unwrap_err().to_string();
        let more = dir.path().join("renewd.d/20-more.toml");
        let many_file = dir.path().join("renewd.d/10-many.toml");
        assert!(
            err.contains(&format!(
                "{} line 2: certificate \"c0\": already defined in {} line 2",
                more.display(),
                many_file.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "{} line 402: certificate \"main\": already defined in {} line 11",
                more.display(),
                location.file.display()
            )),
            "{err}"
        );
        let (_dir, location) = files(&[("10-many.toml", &many)]);
        assert_eq!(Config::load(&location).unwrap().certificates.len(), 101);
    }

    #[test]
    fn problems_in_a_drop_in_name_its_file_and_line() {
        let text = format!("{}ca = [\"nope\"]\n", certificate("a"));
        let (dir, location) = files(&[("10-a.toml", &text)]);
        let err = Config::load(&location).unwrap_err().to_string();
        let want = format!(
            "{} line 5: certificate[1].ca: CA \"nope\" is not defined",
            dir.path().join("renewd.d/10-a.toml").display()
        );
        assert!(err.contains(&want), "{want}\nnot in\n{err}");
    }

    #[test]
    fn a_drop_in_may_not_hold_the_daemon_table_or_unknown_keys() {
        let (dir, location) = files(&[("10-a.toml", "[daemon]\nmax_concurrent = 2\n")]);
        let err = Config::load(&location).unwrap_err().to_string();
        assert!(
            err.starts_with(&dir.path().join("renewd.d/10-a.toml").display().to_string())
                && err.contains("[daemon] belongs in"),
            "{err}"
        );
        let (dir, location) = files(&[(
            "10-a.toml",
            "[ca.x]\ndirectory = \"https://x/dir\"\ncolour = 1\n",
        )]);
        let err = Config::load(&location).unwrap_err().to_string();
        assert!(
            err.starts_with(&dir.path().join("renewd.d/10-a.toml").display().to_string())
                && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn another_directory_can_be_named_and_a_missing_one_is_empty() {
        let (dir, location) = files(&[("10-a.toml", &certificate("a"))]);
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("x.toml"), certificate("x")).unwrap();
        let named = Location::new(location.file.clone(), Some(elsewhere));
        assert_eq!(Config::load(&named).unwrap().names(), ["main", "x"]);
        let missing = Location::new(location.file, Some(dir.path().join("none")));
        assert_eq!(Config::load(&missing).unwrap().names(), ["main"]);
    }
}
