//! `SyncService` through real hyper over 127.0.0.1 and through
//! `tower::ServiceExt::oneshot`.

mod common;

use common::*;
use http::StatusCode;
use rgi::{Hints, InputUse, ResponseHead};
use rgi_tower::SyncService;

fn inline() -> Hints {
    Hints::default()
        .with_input(InputUse::None)
        .with_may_block(false)
}

#[tokio::test]
async fn hello_inline_and_on_the_pool() {
    for hints in [inline(), Hints::CONSERVATIVE] {
        let app = rgi::from_fn(|environ, start| {
            start.start(ResponseHead::new(StatusCode::OK))?;
            Ok(format!("hello {}", environ.path_info()))
        })
        .with_hints(hints);
        let service = SyncService::new(app, host(small_pool()));
        let server = serve(move |connection| service.connection(connection)).await;
        let (parts, body) = fetch(server.addr, request("GET", "/there", TestBody::empty())).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["content-length"], "12");
        assert_eq!(body, "hello /there");
    }
}
