// A `build` parameter that is not a `Dep<T>`: the dependency list is read
// from the parameters, so each must name a service.
use std::sync::Arc;

use provision::{Error, provide};

struct Settings;

struct Greeter;

#[provide(Request)]
impl Greeter {
    async fn build(settings: Arc<Settings>) -> Result<Self, Error> {
        let _ = settings;
        Ok(Greeter)
    }
}

fn main() {}
