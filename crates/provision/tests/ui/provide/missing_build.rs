// A service without `build`: nothing says how to make it.
use provision::{Error, Exit, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn release(self, _exit: Exit) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
