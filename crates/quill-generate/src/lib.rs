//! Text generation from a trained run: [`loaded`] reads a run directory into a model and its
//! vocabulary, [`sampling`] picks the next character from logits, [`generator`] runs the loop.

pub mod generator;
pub mod loaded;
pub mod sampling;

pub use generator::{Decoder, generate};
pub use loaded::{LoadError, LoadedRun};
pub use sampling::SampleOptions;
