// The attribute writes the `impl Provide`; it does not go on one.
use provision::{Error, Provide, Request, provide};

struct Conn;

#[provide(Request)]
impl Provide for Conn {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
