//! `theta-bench`: the macro benchmark runner (one table, peers measured in the same run).

fn main() {
    eprintln!("usage: theta-bench <codecs|read|store|page|...>");
    std::process::exit(2);
}
