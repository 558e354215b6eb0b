// No lifetime: the attribute cannot guess how long the service lives.
use provision::{Error, provide};

struct Conn;

#[provide]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
