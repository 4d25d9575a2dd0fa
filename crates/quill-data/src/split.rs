use crate::Tokens;

/// Token ids cut into a training part (the start of the text) and a validation part (its end),
/// as nanoGPT does: with `val_fraction = 0.1`, train is `tokens[..int(n * 0.9)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Tokens,
    pub val: Tokens,
}

impl Split {
    pub fn new(mut tokens: Vec<u32>, val_fraction: f64) -> Self {
        let train_len = (tokens.len() as f64 * (1.0 - val_fraction)) as usize;
        let val = tokens.split_off(train_len.min(tokens.len()));
        Self {
            train: tokens.into(),
            val: val.into(),
        }
    }
}

/// `text` cut as [`Split::new`] cuts its characters: (train, val) by character count.
pub fn split_text(text: &str, val_fraction: f64) -> (&str, &str) {
    let chars = text.chars().count();
    let train_chars = (chars as f64 * (1.0 - val_fraction)) as usize;
    let cut = text
        .char_indices()
        .nth(train_chars)
        .map_or(text.len(), |(i, _)| i);
    text.split_at(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_the_tail() {
        let split = Split::new((0..100).collect(), 0.1);
        assert_eq!(split.train.to_vec(), (0..90).collect::<Vec<_>>());
        assert_eq!(split.val.to_vec(), (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn text_is_cut_where_its_characters_are() {
        let text = "héllo wörld, ça va? ";
        let (train, val) = split_text(text, 0.25);
        assert_eq!((train, val), ("héllo wörld, ça", " va? "));
        let ids: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let split = Split::new(ids, 0.25);
        assert_eq!(split.train.len(), train.chars().count());
    }
}
