// A helper method inside the service's steps: it belongs in its own block.
use provision::{Error, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }

    fn query(&self) -> u32 {
        1
    }
}

fn main() {}
