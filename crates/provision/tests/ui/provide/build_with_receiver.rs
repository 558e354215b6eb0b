// `build` makes the service, so there is no `self` to take.
use provision::{Error, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build(&self) -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
