use super::*;

fn env() -> Vec<String> {
    [
        "PWD=/home",
        "SHELL=bash",
        "EMPTY=",
        "WITH SPACE=no",
        "A=a b",
        "A=shadowed",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn w(s: &str) -> String {
    process_word(s, &env(), '\\').unwrap()
}

#[test]
fn plain_variables_and_braces() {
    assert_eq!(w("$PWD"), "/home");
    assert_eq!(w("${PWD}"), "/home");
    assert_eq!(w("x${PWD}y"), "x/homey");
    assert_eq!(w("$PWD/x"), "/home/x");
    assert_eq!(w("$UNSET"), "");
    assert_eq!(w("a$"), "a$");
    assert_eq!(w("$ x"), "$ x");
    assert_eq!(w("$1"), "");
}

#[test]
fn the_first_definition_wins() {
    assert_eq!(w("$A"), "a b");
}

#[test]
fn defaults_and_alternatives() {
    assert_eq!(w("${UNSET:-def}"), "def");
    assert_eq!(w("${EMPTY:-def}"), "def");
    assert_eq!(w("${EMPTY-def}"), "");
    assert_eq!(w("${UNSET-def}"), "def");
    assert_eq!(w("${PWD:-def}"), "/home");
    assert_eq!(w("${PWD:+alt}"), "alt");
    assert_eq!(w("${EMPTY:+alt}"), "");
    assert_eq!(w("${EMPTY+alt}"), "alt");
    assert_eq!(w("${UNSET:+alt}"), "");
    assert_eq!(w("${UNSET:-$PWD}"), "/home");
    assert_eq!(w("${UNSET:-'a b'}"), "a b");
}

#[test]
fn required_values_fail_with_the_message() {
    let e = process_word("${UNSET:?must be set}", &env(), '\\').unwrap_err();
    assert_eq!(e.to_string(), "UNSET: must be set");
    let e = process_word("${EMPTY:?}", &env(), '\\').unwrap_err();
    assert_eq!(e.to_string(), "EMPTY: is not allowed to be unset");
    assert_eq!(w("${EMPTY?x}"), "");
}

#[test]
fn pattern_removal() {
    let e = vec!["F=file.tar.gz".to_string()];
    let w = |s: &str| process_word(s, &e, '\\').unwrap();
    assert_eq!(w("${F%.*}"), "file.tar");
    assert_eq!(w("${F%%.*}"), "file");
    assert_eq!(w("${F#*.}"), "tar.gz");
    assert_eq!(w("${F##*.}"), "gz");
    assert_eq!(w("${F#nomatch}"), "file.tar.gz");
}

#[test]
fn quotes_are_removed_single_quotes_stop_expansion() {
    assert_eq!(w("'$PWD'"), "$PWD");
    assert_eq!(w("\"$PWD\""), "/home");
    assert_eq!(w("\"a 'b' c\""), "a 'b' c");
    assert_eq!(w("'a \"b\" c'"), "a \"b\" c");
    assert_eq!(w("he'll'o"), "hello");
}

#[test]
fn the_escape_character() {
    assert_eq!(w("\\$PWD"), "$PWD");
    assert_eq!(w("a\\ b"), "a b");
    assert_eq!(w("\"\\$PWD\""), "$PWD");
    assert_eq!(w("\"\\\"\""), "\"");
    // Inside double quotes other escapes keep their backslash.
    assert_eq!(w("\"\\n\""), "\\n");
    assert_eq!(w("'\\n'"), "\\n");
    assert_eq!(process_word("`$PWD", &env(), '`').unwrap(), "$PWD");
    assert_eq!(process_word("C:\\dir", &env(), '`').unwrap(), "C:\\dir");
}

#[test]
fn errors_for_bad_substitutions() {
    assert!(process_word("${PWD", &env(), '\\').is_err());
    assert!(process_word("${}", &env(), '\\').is_err());
    assert!(process_word("'open", &env(), '\\').is_err());
    assert!(process_word("\"open", &env(), '\\').is_err());
    let e = process_word("${PWD:=x}", &env(), '\\').unwrap_err();
    assert!(e.to_string().contains("unsupported modifier (=)"), "{e}");
}

#[test]
fn words_split_on_unquoted_blanks_after_expansion() {
    let ws = |s: &str| process_words(s, &env(), '\\').unwrap();
    assert_eq!(ws("80 443/tcp"), ["80", "443/tcp"]);
    assert_eq!(ws("$A x"), ["a", "b", "x"]);
    assert_eq!(ws("\"$A\" x"), ["a b", "x"]);
    assert_eq!(ws("a\\ b c"), ["a b", "c"]);
}
