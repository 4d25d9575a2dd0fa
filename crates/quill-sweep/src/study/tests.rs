use super::*;

fn planned(id: &str, number: usize) -> Event {
    Event::Planned {
        trial: id.into(),
        number,
        name: format!("t{number}"),
        group: format!("g{number}"),
        values: vec![("optimizer.lr".into(), "0.001".into())],
        point: vec![Some(0.001)],
        draw: Some(number),
        time: 10.0 + number as f64,
    }
}

#[test]
fn events_round_trip_and_replay_into_states() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::new(dir.path());
    let mut locked = study.lock().unwrap();
    for event in [
        Event::Study {
            sweep: "s.toml".into(),
        },
        Event::Session {
            owner: "a".into(),
            time: 10.0,
        },
        planned("a1", 0),
        planned("b2", 1),
        Event::Started {
            trial: "a1".into(),
            owner: "a".into(),
            resume: false,
            time: 12.0,
        },
        Event::Evaluated {
            trial: "a1".into(),
            step: 30,
            val_loss: 2.5,
            time: 13.0,
        },
        Event::Evaluated {
            trial: "a1".into(),
            step: 60,
            val_loss: 2.25,
            time: 14.0,
        },
        Event::Pruned {
            trial: "a1".into(),
            step: 60,
            fin: false,
            time: 15.0,
        },
        Event::Started {
            trial: "b2".into(),
            owner: "a".into(),
            resume: false,
            time: 15.0,
        },
        Event::Finished {
            trial: "b2".into(),
            best_val_loss: 2.0,
            final_val_loss: 2.1,
            steps: 90,
            wall_s: 3.0,
            time: 20.0,
        },
    ] {
        locked.append(event).unwrap();
    }
    drop(locked);
    let events = study.read().unwrap();
    assert_eq!(events.len(), 10);
    let state = State::replay(&events);
    assert_eq!(state.sweep.as_deref(), Some("s.toml"));
    assert_eq!(
        state.trials[0].status,
        Status::Pruned {
            step: 60,
            fin: false
        }
    );
    assert_eq!(state.trials[0].best(), Some(2.25));
    assert_eq!(state.trials[0].at(30), Some(2.5));
    assert_eq!(state.trials[1].best(), Some(2.0));
    assert_eq!(state.total_steps(), 60);
    assert!((state.wall_s - 10.0).abs() < 1e-9);
}

#[test]
fn a_line_cut_short_by_a_kill_is_skipped_and_the_next_append_starts_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::new(dir.path());
    study.lock().unwrap().append(planned("a1", 0)).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(study.file())
        .unwrap();
    file.write_all(b"{\"event\":\"planned\",\"tri").unwrap();
    assert_eq!(study.read().unwrap().len(), 1);
    study.lock().unwrap().append(planned("b2", 1)).unwrap();
    let state = State::replay(&study.read().unwrap());
    let ids: Vec<&str> = state.trials.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a1", "b2"]);
}
