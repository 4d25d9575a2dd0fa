use super::*;

fn sweep(dir: &tempfile::TempDir, body: &str) -> Result<SweepFile, String> {
    std::fs::create_dir_all(dir.path().join("configs/sweeps")).unwrap();
    std::fs::write(dir.path().join("configs/base.toml"), "").unwrap();
    let path = dir.path().join("configs/sweeps/s.toml");
    std::fs::write(&path, format!("base = \"configs/base.toml\"\n{body}")).unwrap();
    SweepFile::load(&path).map_err(|e| e.to_string())
}

#[test]
fn a_full_file_parses() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(
        &dir,
        "constraints = [\"model.n_embd % model.n_head == 0\"]\nsampler = { kind = \"tpe\", seed = 3, n_startup = 5 }\npruner = { kind = \"asha\", eta = 3, min_steps = 30 }\nresources = { workers = 2, threads = 1 }\nbudget = { max_trials = 20, max_wall = \"1h30m\", target = 1.5 }\nrepeats = 2\n[set]\ntrain.max_steps = 10\n[space]\n\"optimizer.lr\" = { log_uniform = [1e-4, 3e-3] }\nmodel.n_head = [2, 4]\n[derive]\n\"schedule.min_lr\" = \"optimizer.lr / 10\"\n",
    )
    .unwrap();
    assert!(s.base.ends_with("configs/base.toml"));
    assert_eq!(s.set, ["train.max_steps=10"]);
    assert_eq!(s.keys(), ["optimizer.lr", "model.n_head"]);
    assert_eq!(s.sampler.kind, SamplerKind::Tpe);
    assert_eq!((s.sampler.seed, s.sampler.n_startup), (3, 5));
    assert_eq!(
        (s.pruner.kind, s.pruner.eta, s.pruner.min_steps),
        (PrunerKind::Asha, 3, 30)
    );
    assert_eq!((s.resources.workers, s.resources.threads), (2, Some(1)));
    assert_eq!(s.budget.max_wall, Some(Duration::from_secs(5400)));
    assert_eq!(
        (s.budget.max_trials, s.budget.target, s.repeats),
        (Some(20), Some(1.5), 2)
    );
    assert_eq!(s.derive[0].0, "schedule.min_lr");
    assert_eq!(s.constraints.len(), 1);
}

#[test]
fn first_sweep_files_read_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep(&dir, "mode = \"random\"\nsamples = 6\nseed = 4\n[sweep]\n\"optimizer.lr\" = { log_uniform = [1e-4, 3e-3] }\n").unwrap();
    assert_eq!(s.sampler.kind, SamplerKind::Random);
    assert_eq!((s.sampler.seed, s.budget.max_trials), (4, Some(6)));
    let s = sweep(&dir, "[sweep]\n\"optimizer.lr\" = [1e-3, 3e-4]\n").unwrap();
    assert_eq!(s.sampler.kind, SamplerKind::Grid);
}

#[test]
fn bad_sweep_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (body, expected) in [
        ("[sweep]\n", "missing the `[space]`"),
        ("", "missing the `[space]`"),
        (
            "[sweep]\n\"optimizer.lr\" = { log_uniform = [1e-4, 3e-3] }\n",
            "ranges need another sampler",
        ),
        (
            "mode = \"random\"\n[sweep]\n\"optimizer.lr\" = [1]\n",
            "needs `samples`",
        ),
        (
            "[sweep]\n\"optimizer.lr\" = []\n",
            "the list of values is empty",
        ),
        (
            "colour = 1\n[sweep]\n\"optimizer.lr\" = [1]\n",
            "unknown key `colour`",
        ),
        (
            "sampeler = 1\n[sweep]\n\"optimizer.lr\" = [1]\n",
            "did you mean `sampler`",
        ),
        (
            "[space]\n\"optimizer.lrr\" = [1]\n",
            "[space]: unknown key `optimizer.lrr` (did you mean `optimizer.lr`?)",
        ),
        (
            "[set]\n\"train.max_step\" = 1\n[space]\n\"optimizer.lr\" = [1]\n",
            "[set]: unknown key `train.max_step`",
        ),
        (
            "constraints = [\"model.n_embed % 2 == 0\"]\n[space]\n\"optimizer.lr\" = [1]\n",
            "constraints: unknown key `model.n_embed`",
        ),
        (
            "constraints = [\"model.n_embd %\"]\n[space]\n\"optimizer.lr\" = [1]\n",
            "constraints:",
        ),
        (
            "pruner = { kind = \"asha\", eta = 1 }\n[space]\n\"optimizer.lr\" = [1]\n",
            "pruner.eta must be an integer >= 2, got 1",
        ),
        (
            "resources = { workers = 0 }\n[space]\n\"optimizer.lr\" = [1]\n",
            "resources.workers must be an integer >= 1, got 0",
        ),
        (
            "sampler = { kind = \"tpe\" }\n[space]\n\"optimizer.lr\" = [1]\n",
            "max_trials",
        ),
        (
            "sampler = { kind = \"bayes\" }\n[space]\n\"optimizer.lr\" = [1]\n",
            "sampler.kind must be",
        ),
        (
            "budget = { max_wall = \"soon\" }\n[space]\n\"optimizer.lr\" = [1]\n",
            "budget.max_wall: `soon`",
        ),
        (
            "[space]\n\"optimizer.lr\" = [1]\n[derive]\n\"schedule.min_lr\" = 3\n",
            "must be an expression in a string",
        ),
    ] {
        let err = sweep(&dir, body).unwrap_err();
        assert!(err.contains(expected), "{expected:?} in {err:?}");
        assert!(err.contains("s.toml: "), "{err}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("20m"), Some(Duration::from_secs(1200)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("20"), None);
    assert_eq!(parse_duration("0m"), None);
}
