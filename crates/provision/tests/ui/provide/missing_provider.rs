// The first promise through the attribute: a dependency nothing provides.
use provision::{Dep, Error, provide};

struct Clock;

struct Audit;

#[provide(Request)]
impl Audit {
    async fn build(clock: Dep<Clock>) -> Result<Self, Error> {
        let _ = clock;
        Ok(Audit)
    }
}

fn main() {}
