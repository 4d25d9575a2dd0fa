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

/// One attention layer's keys and values, `[batch, head, position, head_dim]`, in buffers of
/// the model's whole context (`block_size` positions) allocated at the first append. Keeping
/// every tensor the same shape from one decoded character to the next matters on GPUs:
/// kernels are compiled and tuned per shape, and a buffer that grew by one position per
/// character would cost a compilation per character.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys_values: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
    len: usize,
}

impl<B: Backend> Default for LayerCache<B> {
    fn default() -> Self {
        Self {
            keys_values: None,
            len: 0,
        }
    }
}

impl<B: Backend> LayerCache<B> {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the new positions' keys and values after those held; returns the whole buffers
    /// (`capacity` positions; those past [`len`](Self::len) are zeros, for the caller to mask).
    pub(crate) fn append(
        &mut self,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        capacity: usize,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [batch, heads, new, head_dim] = k.dims();
        let end = self.len + new;
        assert!(
            end <= capacity,
            "{end} positions exceed the cache's {capacity}"
        );
        let (keys, values) = self.keys_values.take().unwrap_or_else(|| {
            let buffer =
                || Tensor::zeros([batch, heads, capacity, head_dim], (&k.device(), k.dtype()));
            (buffer(), buffer())
        });
        let range = [0..batch, 0..heads, self.len..end, 0..head_dim];
        let keys = keys.slice_assign(range.clone(), k);
        let values = values.slice_assign(range, v);
        self.keys_values = Some((keys.clone(), values.clone()));
        self.len = end;
        (keys, values)
    }
}
