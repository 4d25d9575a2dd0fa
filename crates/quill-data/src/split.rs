/// Token ids cut into a training part (the start of the text) and a validation part (its end),
/// as nanoGPT does: with `val_fraction = 0.1`, train is `tokens[..int(n * 0.9)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl Split {
    pub fn new(mut tokens: Vec<u32>, val_fraction: f64) -> Self {
        let train_len = (tokens.len() as f64 * (1.0 - val_fraction)) as usize;
        let val = tokens.split_off(train_len.min(tokens.len()));
        Self { train: tokens, val }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_the_tail() {
        let split = Split::new((0..100).collect(), 0.1);
        assert_eq!(split.train, (0..90).collect::<Vec<_>>());
        assert_eq!(split.val, (90..100).collect::<Vec<_>>());
    }
}
