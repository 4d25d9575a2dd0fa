use burn::prelude::*;

/// Keys and values of the positions already processed, per layer, so that decoding one more
/// character costs one position's work instead of the whole context's.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        Self { layers: Vec::new() }
    }
}

impl<B: Backend> KvCache<B> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.clear();
    }

    pub(crate) fn layers(&mut self, n_layer: usize) -> &mut [LayerCache<B>] {
        if self.layers.len() != n_layer {
            self.layers = (0..n_layer).map(|_| LayerCache::default()).collect();
        }
        &mut self.layers
    }
}

/// One attention layer's keys and values, `[batch, head, position, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys_values: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> Default for LayerCache<B> {
    fn default() -> Self {
        Self { keys_values: None }
    }
}

impl<B: Backend> LayerCache<B> {
    pub fn len(&self) -> usize {
        self.keys_values.as_ref().map_or(0, |(k, _)| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the new positions' keys and values; returns all keys and values.
    pub(crate) fn append(
        &mut self,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.keys_values.take() {
            Some((past_k, past_v)) => (
                Tensor::cat(vec![past_k, k], 2),
                Tensor::cat(vec![past_v, v], 2),
            ),
            None => (k, v),
        };
        self.keys_values = Some((k.clone(), v.clone()));
        (k, v)
    }
}
