fn main() { println!("ringload: not built yet"); }
