//! One kernel, compiled for the instruction sets of x86-64 CPUs and chosen at run time.
//!
//! The project is built for baseline x86-64, so that one binary runs everywhere. The vectorised kernels
//! (the trainer's passes, the fast forward's elementwise passes) are plain Rust written so that LLVM
//! vectorises them; [`simd_dispatch!`] compiles such a kernel once for AVX-512, once for AVX2 + FMA and
//! once for the baseline, and picks one by [`level`]. Helpers a kernel calls must be `#[inline(always)]`
//! so that they take the features of the kernel they are inlined into (a closure handed to a
//! `#[target_feature]` function is not reliably inlined, which is why this is a macro).

/// Compiles `$body` (a function body over the arguments) three times and dispatches at run time.
///
/// ```text
/// simd_dispatch! { pub fn name(a: &[f32]) -> f32 { body } }
/// ```
#[macro_export]
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma,popcnt,bmi1,bmi2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma,popcnt,bmi1,bmi2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::level() {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    $crate::Level::V4 => return unsafe { v4($($arg),*) },
                    $crate::Level::V3 => return unsafe { v3($($arg),*) },
                    $crate::Level::Base => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// Instruction-set level chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 (F, VL) with AVX2, FMA, POPCNT and BMI1/2.
    V4,
    /// AVX2, FMA, POPCNT and BMI1/2.
    V3,
    /// The compilation target's baseline.
    Base,
}

/// The bit-manipulation instructions both vector levels are compiled with (every AVX2 CPU has
/// them; checked anyway, since a hypervisor may hide flags).
#[cfg(target_arch = "x86_64")]
fn bits() -> bool {
    std::is_x86_feature_detected!("popcnt")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
}

/// The best level this CPU supports (detected once).
pub fn level() -> Level {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && bits()
            {
                return Level::V4;
            }
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && bits()
            {
                return Level::V3;
            }
        }
        Level::Base
    })
}
