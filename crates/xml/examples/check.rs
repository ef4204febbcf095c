//! Parses an XML file given on the command line and prints the model or the errors.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: check FILE");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    match huddle_xml::parse_bytes(&bytes) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                println!("warning: {w}");
            }
            println!("{:#?}", parsed.document);
            println!("{}", huddle_xml::render(&parsed.document));
        }
        Err(errors) => {
            for e in &errors {
                println!("error: {e}");
            }
            std::process::exit(1);
        }
    }
}
