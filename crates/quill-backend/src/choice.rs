//! Which kernels run: a value read once from the environment, carried by the model and the
//! optimizer (never a process-global switch).

/// The matrix products of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matmul {
    /// burn's own products.
    Burn,
    /// NVIDIA's cuBLAS (quill-cublas), on quill-cuda's backend; burn's elsewhere.
    Cublas,
}

/// The kernels a runner's backend has, for [`Kernels::from_env`]: which variables it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// burn-flex and quill-kernels: `QUILL_CPU_KERNELS`.
    Cpu,
    /// CUDA or WGPU and quill-gpu-kernels: `QUILL_SOFTMAX`, `QUILL_DROPOUT`, `QUILL_ADAMW`,
    /// `QUILL_LAYER_NORM`, `QUILL_SPLIT_HEADS`.
    Gpu,
}

/// Which kernels compute each operation of [`crate`]'s table: `true` for quill's kernel
/// (where the backend has one), `false` for burn's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// quill-kernels on burn-flex: linear layers, layer norm, GELU, causal attention, AdamW.
    pub cpu: bool,
    /// Attention's softmax with its scale, causal mask and dropout (GPU).
    pub softmax: bool,
    /// Residual dropout with hashed masks (GPU).
    pub dropout: bool,
    /// The optimizer step and clipping's sum of squares (GPU).
    pub adamw: bool,
    /// The layer norm (GPU).
    pub layer_norm: bool,
    /// Attention's head split and merge (GPU).
    pub split_heads: bool,
    pub matmul: Matmul,
    /// How many partial products each linear layer's weight gradient is computed as in
    /// training (split-K; quill-model's `Compute` says why); 1 computes it as one product.
    pub weight_grad_split: usize,
}

impl Default for Kernels {
    fn default() -> Self {
        Self::QUILL
    }
}

/// A switch's variable, its name in a backend's suffix when off, and its field.
type Switch = (&'static str, &'static str, fn(&mut Kernels) -> &mut bool);

const CPU_SWITCHES: [Switch; 1] = [("QUILL_CPU_KERNELS", "+burn-kernels", |k| &mut k.cpu)];
const GPU_SWITCHES: [Switch; 5] = [
    ("QUILL_SOFTMAX", "+burn-softmax", |k| &mut k.softmax),
    ("QUILL_DROPOUT", "+burn-dropout", |k| &mut k.dropout),
    ("QUILL_ADAMW", "+burn-adamw", |k| &mut k.adamw),
    ("QUILL_LAYER_NORM", "+burn-layer-norm", |k| {
        &mut k.layer_norm
    }),
    ("QUILL_SPLIT_HEADS", "+burn-split-heads", |k| {
        &mut k.split_heads
    }),
];

impl Runtime {
    /// The switches this runtime's runner reads.
    fn switches(self) -> &'static [Switch] {
        match self {
            Runtime::Cpu => &CPU_SWITCHES,
            Runtime::Gpu => &GPU_SWITCHES,
        }
    }
}

/// The variable that overrides a runner's [`Kernels::weight_grad_split`] (benchmarks).
pub const WEIGHT_GRAD_SPLIT_ENV: &str = "QUILL_WEIGHT_GRAD_SPLIT";

impl Kernels {
    /// quill's kernels wherever a backend has them, burn's products, one weight-gradient
    /// product: what a model or optimizer built without a runner's choice uses.
    pub const QUILL: Self = Self {
        cpu: true,
        softmax: true,
        dropout: true,
        adamw: true,
        layer_norm: true,
        split_heads: true,
        matmul: Matmul::Burn,
        weight_grad_split: 1,
    };

    /// burn's operations everywhere.
    pub const BURN: Self = Self {
        cpu: false,
        softmax: false,
        dropout: false,
        adamw: false,
        layer_norm: false,
        split_heads: false,
        matmul: Matmul::Burn,
        weight_grad_split: 1,
    };

    /// These kernels (a runner's defaults) with the choices of the environment applied: each
    /// of `runtime`'s variables takes `fused` or `burn` (unset or empty: the default), and
    /// `QUILL_WEIGHT_GRAD_SPLIT` a positive whole number. A wrong value is a one-line error.
    pub fn from_env(self, runtime: Runtime) -> Result<Self, String> {
        self.from_vars(runtime, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read by `var`.
    pub fn from_vars(
        mut self,
        runtime: Runtime,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        for (name, _, field) in runtime.switches() {
            let value = var(name).unwrap_or_default();
            let on = field(&mut self);
            *on = match value.trim() {
                "" => *on,
                "fused" => true,
                "burn" => false,
                _ => {
                    let choices = if *on { "fused, burn" } else { "burn, fused" };
                    return Err(format!("{name}={value} is not one of: {choices}"));
                }
            };
        }
        if let Some(value) = var(WEIGHT_GRAD_SPLIT_ENV) {
            self.weight_grad_split = match value.trim().parse::<usize>() {
                Ok(parts) if parts > 0 => parts,
                _ => {
                    return Err(format!(
                        "{WEIGHT_GRAD_SPLIT_ENV}={value} is not a positive whole number"
                    ));
                }
            };
        }
        Ok(self)
    }

    /// The suffix of a backend's name for the kernels switched to burn's (`+burn-softmax`,
    /// `+burn-dropout`, ... in the order of `runtime`'s variables); empty when none is.
    pub fn suffix(&self, runtime: Runtime) -> String {
        let mut copy = *self;
        runtime
            .switches()
            .iter()
            .filter_map(|(_, name, field)| (!*field(&mut copy)).then_some(*name))
            .collect()
    }

    /// Whether the products go to cuBLAS (then attention's products do too).
    pub fn cublas(&self) -> bool {
        cfg!(feature = "cuda") && self.matmul == Matmul::Cublas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_environment_switches_each_kernel_and_names_it() {
        let k = Kernels::QUILL
            .from_vars(
                Runtime::Gpu,
                vars(&[("QUILL_SOFTMAX", "burn"), ("QUILL_ADAMW", " fused ")]),
            )
            .unwrap();
        assert!(!k.softmax && k.adamw && k.dropout);
        assert_eq!(k.suffix(Runtime::Gpu), "+burn-softmax");
        let all_burn = Kernels::BURN.suffix(Runtime::Gpu);
        assert_eq!(
            all_burn,
            "+burn-softmax+burn-dropout+burn-adamw+burn-layer-norm+burn-split-heads"
        );
        // The CPU runner reads its own variable only.
        let cpu = Kernels::QUILL
            .from_vars(
                Runtime::Cpu,
                vars(&[("QUILL_SOFTMAX", "burn"), ("QUILL_CPU_KERNELS", "burn")]),
            )
            .unwrap();
        assert!(cpu.softmax && !cpu.cpu);
        assert_eq!(cpu.suffix(Runtime::Cpu), "+burn-kernels");
        let split = Kernels::QUILL
            .from_vars(Runtime::Cpu, vars(&[("QUILL_WEIGHT_GRAD_SPLIT", "4")]))
            .unwrap();
        assert_eq!(split.weight_grad_split, 4);
    }

    #[test]
    fn a_wrong_value_is_one_line_naming_it() {
        let error = Kernels::QUILL
            .from_vars(Runtime::Gpu, vars(&[("QUILL_LAYER_NORM", "apex")]))
            .unwrap_err();
        assert_eq!(error, "QUILL_LAYER_NORM=apex is not one of: fused, burn");
        let error = Kernels::QUILL
            .from_vars(Runtime::Gpu, vars(&[("QUILL_WEIGHT_GRAD_SPLIT", "0")]))
            .unwrap_err();
        assert_eq!(
            error,
            "QUILL_WEIGHT_GRAD_SPLIT=0 is not a positive whole number"
        );
    }
}
