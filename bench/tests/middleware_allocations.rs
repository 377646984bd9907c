//! `Wrapped` allocates nothing per request beyond what the hand-written
//! middleware does (issue 15, item 1), counted by the benchmark's own
//! allocator around the benchmark's own driver. One test in its own
//! binary, so no other test's allocations are counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rgi_bench::alloc_count::CountingAlloc;
use rgi_bench::mw::{Driver, Flavor, Stack};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc::new();

/// Allocations of `n` requests, the application built once for them.
fn spent(driver: &mut Driver, flavor: Flavor, stack: Stack, n: u64) -> u64 {
    let before = ALLOCATOR.counts();
    driver.repeat(flavor, stack, n).unwrap();
    ALLOCATOR.counts().since(before).allocations
}

/// Allocations per request: 55 requests less 5 (the application's own
/// construction, `Wrapped`'s `Arc` included, cancels, as in the
/// benchmark), after one request that grows the sink's chunk list.
fn per_request(flavor: Flavor, stack: Stack) -> u64 {
    let mut driver = Driver::new(flavor).unwrap();
    driver.repeat(flavor, stack, 1).unwrap();
    let few = spent(&mut driver, flavor, stack, 5);
    let many = spent(&mut driver, flavor, stack, 55);
    let extra = many - few;
    assert_eq!(extra % 50, 0, "{} {}: uneven", flavor.name(), stack.name());
    extra / 50
}

#[test]
fn wrapped_allocates_what_the_hand_written_middleware_does() {
    for flavor in Flavor::ALL {
        let bare = per_request(flavor, Stack::Bare);
        for (hand, wrapped) in [
            (Stack::HeaderHand, Stack::HeaderWrapped),
            (Stack::CountHand, Stack::CountWrapped),
        ] {
            let hand_count = per_request(flavor, hand);
            assert!(
                hand_count >= bare,
                "{}: a middleware frees nothing",
                flavor.name()
            );
            assert_eq!(
                per_request(flavor, wrapped),
                hand_count,
                "{} {} against {}",
                flavor.name(),
                wrapped.name(),
                hand.name()
            );
        }
    }
}
