// `release` is told how the request ended, and nothing else.
use provision::{Error, Exit, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }

    async fn release(self, exit: Exit, force: bool) -> Result<(), Error> {
        let _ = (exit, force);
        Ok(())
    }
}

fn main() {}
