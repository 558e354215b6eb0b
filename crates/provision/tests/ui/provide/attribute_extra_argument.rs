// The attribute takes the lifetime only: the dependencies are `build`'s
// parameters.
use provision::{Error, provide};

struct Conn;

#[provide(Request, Db)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
