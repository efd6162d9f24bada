//! The parity fixtures with the networks channels-first (DCGAN_CHANNELS_LAST=0), as
//! __test__/parity-options.spec.ts runs them. A binary of its own: the variable is read when a
//! model is built, so it must not change while other tests of the same process build models.
mod support;

use support::{fixture, forward_matches, three_steps_match};

#[test]
fn channels_first_forward_and_three_steps_equal_pytorch() {
    std::env::set_var("DCGAN_CHANNELS_LAST", "0");
    assert!(!fixture("seed64").gan().channels_last);
    for name in ["seed64", "rgb32"] {
        forward_matches(name);
        three_steps_match(name);
    }
}
