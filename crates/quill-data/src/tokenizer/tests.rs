use super::*;
use crate::cuts::is_safe_cut;

/// Text with what tokenizers trip on: accents, CJK, emoji (joined and flags), CRLF, tabs,
/// odd spaces.
const WORLD: &str = "Hello world! Ça va? Grüße aus Köln.\n\n日本語のテキスト、中文文本。\n\
    Emoji: 😀🎉👩‍👩‍👧 and a flag 🇫🇷.\n  indented\n\n\nend\r\nCRLF lines\r\n\r\nit's\t\ttabs \
    don't \u{3000}wide space\u{a0}nbsp 42 \n";

fn shakespeare() -> Option<String> {
    [
        "../../data/tinyshakespeare.txt",
        "../../../shared/data/tinyshakespeare.txt",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
}

#[test]
fn gpt2_encodes_as_tiktoken_does() {
    let gpt2 = Tokenizer::gpt2();
    assert_eq!(gpt2.len(), 50257);
    // tiktoken.get_encoding("gpt2").encode_ordinary(...)
    assert_eq!(gpt2.encode("Hello world").unwrap(), [15496, 995]);
    assert_eq!(gpt2.encode("hello world").unwrap(), [31373, 995]);
    assert_eq!(gpt2.encode("\n").unwrap(), [198]);
    // Two newlines before a word are two tokens, at the end of a text one.
    assert_eq!(gpt2.encode("a\n\nb").unwrap()[1..3], [198, 198]);
    assert_eq!(gpt2.encode("a\n\n").unwrap()[1..], [628]);
    let ids = gpt2.encode(WORLD).unwrap();
    assert_eq!(gpt2.decode(&ids), WORLD);
    // Some tokens end inside a character (emoji and CJK are split into bytes), which
    // decoding holds back; a cut character at the end and an unknown id are U+FFFD.
    let cut = |&id: &u32| std::str::from_utf8(&gpt2.token_bytes(id).unwrap()).is_err();
    assert!(ids.iter().any(cut));
    let emoji = gpt2.encode("😀").unwrap();
    assert_eq!(gpt2.decode(&emoji[..emoji.len() - 1]), "\u{FFFD}");
    assert_eq!(gpt2.decode(&[31373, 60000]), "hello\u{FFFD}");
}

#[test]
fn long_texts_encode_in_parallel_pieces_as_one() {
    let text = shakespeare().unwrap_or_else(|| WORLD.repeat(500));
    let text = &text[..text.len().min(200_000)];
    let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 400, text, text).unwrap();
    for tokenizer in [Tokenizer::gpt2(), bpe] {
        let whole = tokenizer.encode_piece(text).unwrap();
        assert!(line_chunks(text, 4096).len() > 10);
        assert_eq!(tokenizer.encode_in_chunks(text, 4096).unwrap(), whole);
        let tricky = WORLD.repeat(40);
        let whole = tokenizer.encode_piece(&tricky).unwrap();
        assert_eq!(tokenizer.encode_in_chunks(&tricky, 8).unwrap(), whole);
    }
    assert_eq!(line_chunks(WORLD, 8).concat(), WORLD);
}

#[test]
fn every_safe_cut_splits_the_ids_of_the_whole_text() {
    let text = WORLD.repeat(2);
    let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 300, &text, &text).unwrap();
    let cuts: Vec<usize> = (0..text.len())
        .filter(|&i| is_safe_cut(text.as_bytes(), i))
        .collect();
    assert!(cuts.len() > 20, "{cuts:?}");
    for tokenizer in [Tokenizer::gpt2(), bpe] {
        let whole = tokenizer.encode_piece(&text).unwrap();
        for &i in &cuts {
            let mut parts = tokenizer.encode_piece(&text[..i]).unwrap();
            parts.extend(tokenizer.encode_piece(&text[i..]).unwrap());
            assert_eq!(
                parts,
                whole,
                "cut at {i}: {:?}|{:?}",
                &text[..i],
                &text[i..]
            );
        }
    }
}

#[test]
fn a_trained_bpe_has_its_size_round_trips_and_saves_as_tokenizer_json() {
    let text = shakespeare().unwrap_or_else(|| WORLD.repeat(200));
    let bpe = Tokenizer::for_corpus(TokenizerKind::Bpe, 512, &text, &text).unwrap();
    assert_eq!(bpe.len(), 512);
    let ids = bpe.encode(&text[..5000]).unwrap();
    assert!(
        ids.len() < 5000 * 6 / 10,
        "merges shorten the text: {}",
        ids.len()
    );
    assert_eq!(bpe.decode(&ids), &text[..5000]);
    // Any text, even characters the training text never had.
    assert_eq!(bpe.decode(&bpe.encode(WORLD).unwrap()), WORLD);

    let dir = tempfile::tempdir().unwrap();
    bpe.save(dir.path()).unwrap();
    let standard = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    let back = Tokenizer::load(dir.path()).unwrap();
    assert_eq!(back, bpe);
    assert_eq!(back.encode(WORLD).unwrap(), bpe.encode(WORLD).unwrap());
    let theirs = standard.encode(WORLD, false).unwrap().get_ids().to_vec();
    assert_eq!(theirs, bpe.encode(WORLD).unwrap());
    assert_eq!(standard.decode(&theirs, false).unwrap(), WORLD);
}

#[test]
fn every_tokenizer_round_trips_and_saves() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [TokenizerKind::Char, TokenizerKind::Gpt2, TokenizerKind::Bpe] {
        let tokenizer = Tokenizer::for_corpus(kind, 300, WORLD, WORLD).unwrap();
        let ids = tokenizer.encode(WORLD).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < tokenizer.len()));
        assert_eq!(tokenizer.decode(&ids), WORLD, "{kind:?}");
        let path = dir.path().join(kind.name());
        std::fs::create_dir(&path).unwrap();
        tokenizer.save(&path).unwrap();
        assert_eq!(Tokenizer::load(&path).unwrap(), tokenizer);
    }
    assert_eq!(
        Tokenizer::for_corpus(TokenizerKind::Char, 0, WORLD, WORLD)
            .unwrap()
            .len(),
        WORLD
            .chars()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
}
