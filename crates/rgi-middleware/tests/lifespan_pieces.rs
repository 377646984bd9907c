//! Start-up and shut-down pass through `Router` (every mounted
//! application, in order, and back in reverse), `PreRead` and `Timeout`,
//! on both stacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use rgi::{Application, BoxError, Environ, ServerInfo, StartResponse, Startup};
use rgi_async::AsyncApplication;
use rgi_middleware::{Mount, PreRead, Router, Timeout};

type Order = Arc<Mutex<Vec<String>>>;

/// Records its start-up and shut-down under its name.
#[derive(Clone)]
struct Life(&'static str, Order);

impl Life {
    fn up(&self) {
        self.1.lock().unwrap().push(format!("{} up", self.0));
    }
    fn down(&self) {
        self.1.lock().unwrap().push(format!("{} down", self.0));
    }
}

impl Application for Life {
    type Body = rgi::Empty;
    fn call(&self, _e: Environ, start: &mut StartResponse<'_>) -> Result<rgi::Empty, BoxError> {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }
    fn startup(&self, _startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.up();
        Ok(())
    }
    fn shutdown(&self) {
        self.down();
    }
}

impl AsyncApplication for Life {
    type Body = rgi::Empty;
    fn call(&self, _e: Environ, start: &mut StartResponse<'_>) -> Result<rgi::Empty, BoxError> {
        start.start(StatusCode::NO_CONTENT)?;
        Ok(rgi::Empty)
    }
    fn startup(&self, _startup: &mut Startup<'_>) -> Result<(), BoxError> {
        self.up();
        Ok(())
    }
    fn shutdown(&self) {
        self.down();
    }
}

const EXPECTED: [&str; 4] = ["a up", "b up", "b down", "a down"];

#[test]
fn lifespan_passes_through_the_pieces() {
    let order = Order::default();
    let sync_router = Router::new()
        .mount(
            Mount::at("/a").unwrap(),
            PreRead::new(Life("a", order.clone()), 1),
        )
        .mount(
            Mount::at("/b").unwrap(),
            PreRead::new(Life("b", order.clone()), 1),
        );
    rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        Application::startup(&sync_router, s)
    })
    .unwrap();
    rgi::run_shutdown(|| Application::shutdown(&sync_router)).unwrap();
    assert_eq!(*order.lock().unwrap(), EXPECTED);

    let order = Order::default();
    let limit = Duration::from_secs(1);
    let async_router = Router::new()
        .mount(
            Mount::at("/a").unwrap(),
            Timeout::new(PreRead::new(Life("a", order.clone()), 1), limit),
        )
        .mount(
            Mount::at("/b").unwrap(),
            Timeout::new(PreRead::new(Life("b", order.clone()), 1), limit),
        );
    rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        AsyncApplication::startup(&async_router, s)
    })
    .unwrap();
    rgi::run_shutdown(|| AsyncApplication::shutdown(&async_router)).unwrap();
    assert_eq!(*order.lock().unwrap(), EXPECTED);
}

#[test]
fn a_failed_start_up_shuts_down_what_had_started() {
    struct Fails;
    impl Application for Fails {
        type Body = rgi::Empty;
        fn call(&self, _e: Environ, _s: &mut StartResponse<'_>) -> Result<rgi::Empty, BoxError> {
            Err("never called".into())
        }
        fn startup(&self, _startup: &mut Startup<'_>) -> Result<(), BoxError> {
            Err("no database".into())
        }
    }
    let order = Order::default();
    let router = Router::new()
        .mount(
            Mount::at("/a").unwrap(),
            rgi_middleware::BoxApplication::new(Life("a", order.clone())),
        )
        .mount(
            Mount::at("/f").unwrap(),
            rgi_middleware::BoxApplication::new(Fails),
        )
        .mount(
            Mount::at("/b").unwrap(),
            rgi_middleware::BoxApplication::new(Life("b", order.clone())),
        );
    let started = rgi::run_startup(ServerInfo::new("localhost", 80).unwrap(), |s| {
        router.startup(s)
    });
    assert!(started.is_err());
    // What started is shut down again; what came after never started.
    assert_eq!(*order.lock().unwrap(), ["a up", "a down"]);
}
