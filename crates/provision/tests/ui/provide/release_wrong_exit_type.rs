// A signature the attribute accepts in shape but the trait refuses in type:
// the compiler's own error, pointing at the user's parameter.
use provision::{Error, provide};

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build() -> Result<Self, Error> {
        Ok(Conn)
    }

    async fn release(self, _exit: bool) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
