use super::*;

fn p(s: &str) -> Dockerfile {
    parse(s).unwrap()
}

fn err(s: &str) -> String {
    parse(s).unwrap_err().to_string()
}

#[test]
fn instructions_are_case_insensitive_and_comments_skipped() {
    let d = p("# a comment\nfrom busybox\n  # indented comment\nRun echo hi\n\ncmd [\"sh\"]\n");
    let cmds: Vec<&str> = d.instructions.iter().map(|i| i.cmd.as_str()).collect();
    assert_eq!(cmds, ["from", "run", "cmd"]);
    assert_eq!(d.instructions[1].line, 4);
    assert_eq!(d.instructions[1].original, "Run echo hi");
    assert!(d.instructions[2].json);
    assert_eq!(d.instructions[2].args, ["sh"]);
}

#[test]
fn continuations_join_lines_and_skip_comments_and_blank_lines_between() {
    let d = p("FROM busybox\nRUN echo a \\\n# inner comment\n\n    b \\  \n c\n");
    let run = &d.instructions[1];
    assert_eq!(run.rest(), "echo a     b  c");
    assert_eq!(run.line, 2);
}

#[test]
fn escape_directive_changes_the_continuation_character() {
    let d = p("# escape=`\nFROM busybox\nRUN echo C:\\dir `\n  next\n");
    assert_eq!(d.escape, '`');
    assert_eq!(d.instructions[1].rest(), "echo C:\\dir   next");
    // After the first instruction a directive is a plain comment.
    let d = p("FROM busybox\n# escape=`\nRUN a \\\nb\n");
    assert_eq!(d.escape, '\\');
    assert_eq!(d.instructions[1].rest(), "a b");
}

#[test]
fn syntax_directive_is_accepted_and_ignored() {
    let d = p("# syntax=docker/dockerfile:1\n# escape=\\\nFROM busybox\n");
    assert_eq!(d.instructions.len(), 1);
    assert!(err("# escape=x\nFROM busybox").contains("invalid escape token"));
}

#[test]
fn shell_and_exec_forms() {
    let d = p("FROM b\nRUN [\"echo\", \"a b\"]\nRUN [not json\nENTRYPOINT echo $HOME\nSHELL [\"/bin/ash\", \"-c\"]\n");
    assert!(d.instructions[1].json);
    assert_eq!(d.instructions[1].args, ["echo", "a b"]);
    assert!(!d.instructions[2].json);
    assert_eq!(d.instructions[2].args, ["[not json"]);
    assert_eq!(d.instructions[3].args, ["echo $HOME"]);
    assert!(err("FROM b\nSHELL /bin/sh -c").contains("SHELL requires the arguments to be in JSON form"));
}

#[test]
fn env_and_label_take_pairs_or_the_old_form() {
    let d = p("FROM b\nENV A=1 B=\"two words\" C=x\\ y\nENV OLD the whole rest\nLABEL \"com.x\"=\"v\" k=v\n");
    assert_eq!(d.instructions[1].args, ["A=1", "B=\"two words\"", "C=x\\ y"]);
    assert_eq!(d.instructions[2].args, ["OLD=the whole rest"]);
    assert_eq!(d.instructions[3].args, ["\"com.x\"=\"v\"", "k=v"]);
    assert!(err("FROM b\nENV A=1 B").contains("can't find = in \"B\""));
    assert!(err("FROM b\nENV ONLY").contains("ENV must have two arguments"));
}

#[test]
fn flags_are_split_off_and_checked() {
    let d = p("FROM --platform=linux/amd64 busybox AS base\nCOPY --from=base --chown=1:2 a b /dst/\n");
    assert_eq!(d.instructions[0].flag("platform"), Some("linux/amd64"));
    assert_eq!(d.instructions[0].args, ["busybox", "AS", "base"]);
    assert_eq!(d.instructions[1].flag("from"), Some("base"));
    assert_eq!(d.instructions[1].flag("chown"), Some("1:2"));
    assert_eq!(d.instructions[1].args, ["a", "b", "/dst/"]);
    assert!(err("FROM b\nCOPY --nope=1 a b").contains("line 2: Unknown flag: nope"));
}

#[test]
fn errors_name_the_line() {
    assert_eq!(
        err("FROM b\n\nFOO bar"),
        "dockerfile parse error line 3: unknown instruction: FOO"
    );
    assert!(err("FROM b\nCOPY onlyone")
        .starts_with("dockerfile parse error line 2: COPY requires at least two arguments"));
    assert!(err("FROM a b").contains("FROM requires either one or three arguments"));
    assert!(err("FROM b\nONBUILD ONBUILD RUN x").contains("isn't allowed"));
}

#[test]
fn heredocs_read_lines_up_to_the_terminator() {
    let d = p("FROM b\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-\"END\" /f\n\tkeep $X\n\tEND\nCMD x\n");
    let run = &d.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "echo one\necho two\n");
    assert!(run.heredocs[0].expand);
    let copy = &d.instructions[2];
    assert_eq!(copy.heredocs[0].name, "END");
    assert_eq!(copy.heredocs[0].content, "keep $X\n");
    assert!(!copy.heredocs[0].expand);
    assert_eq!(d.instructions[3].cmd, "cmd");
    assert!(err("FROM b\nRUN <<EOF\nnever closed\n").contains("unterminated heredoc EOF"));
}

#[test]
fn healthcheck_and_onbuild() {
    let d = p("FROM b\nHEALTHCHECK --interval=5s CMD curl -f x\nHEALTHCHECK NONE\nONBUILD RUN echo hi\n");
    assert_eq!(d.instructions[1].args, ["CMD", "curl -f x"]);
    assert_eq!(d.instructions[1].flag("interval"), Some("5s"));
    assert_eq!(d.instructions[2].args, ["NONE"]);
    assert_eq!(d.instructions[3].args, ["RUN echo hi"]);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let d = p("FROM b\r\nRUN a \\\r\n b\r\n");
    assert_eq!(d.instructions[1].rest(), "a  b");
}
