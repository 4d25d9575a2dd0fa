//! Branch-free scalar math that the compiler can vectorize, unlike `libm`'s calls.

/// `e^x` for `x <= 0` (relative error ~2e-7; 0 below -87, where f32 underflows anyway).
#[inline(always)]
pub fn exp_non_positive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer.
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // x - n·ln2 in two parts (Cody–Waite), so the reduction stays exact.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
    e_r * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let (fast, exact) = (exp_non_positive(x), x.exp());
            assert!(
                (fast - exact).abs() <= 4e-7 * exact + 1e-38,
                "exp({x}) = {fast}, want {exact}"
            );
        }
    }
}
