//! `AsyncService` through real hyper over 127.0.0.1 and through
//! `tower::ServiceExt::oneshot`.

mod common;

use common::*;
use http::StatusCode;
use rgi::ResponseHead;
use rgi_tower::AsyncService;

#[tokio::test]
async fn hello_async() {
    let app = rgi_async::from_fn(|environ, start| {
        start.start(ResponseHead::new(StatusCode::OK))?;
        let offload = rgi_async::Capabilities::of(&environ).is_some();
        Ok(bytes::Bytes::from(format!(
            "hello {} {offload}",
            environ.path_info()
        )))
    });
    let service = AsyncService::new(app, host(small_pool()));
    let server = serve(move |connection| service.connection(connection)).await;
    let (parts, body) = fetch(server.addr, request("GET", "/there", TestBody::empty())).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-length"], "17");
    assert_eq!(body, "hello /there true");
}
