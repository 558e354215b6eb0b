// A service lists a dependency that nothing provides.
use provision::{Dep, Error, Provide, Request};

struct Clock;

struct Audit;

impl Provide for Audit {
    type Lifetime = Request;
    type Deps = (Clock,);
    async fn build(_: (Dep<Clock>,)) -> Result<Self, Error> {
        Ok(Audit)
    }
}

fn main() {}
