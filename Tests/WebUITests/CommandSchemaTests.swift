import Foundation
import WebUI
import XCTest

/// Command lines from the page's form values, checked against the command's own option list.
final class CommandSchemaTests: XCTestCase {
    /// The shape of ArgumentParser's `--experimental-dump-help`, cut down to a few options of `peft train`.
    let dump = #"""
    {"command": {"commandName": "train", "abstract": "Fine-tune.", "arguments": [
      {"kind": "option", "names": [{"kind": "long", "name": "model"}], "isOptional": false, "isRepeating": false, "shouldDisplay": true, "abstract": "Model folder."},
      {"kind": "option", "names": [{"kind": "long", "name": "method"}], "isOptional": true, "isRepeating": false, "shouldDisplay": true, "abstract": "Fine-tuning method.", "defaultValue": "lora"},
      {"kind": "option", "names": [{"kind": "long", "name": "lora-r"}], "isOptional": true, "isRepeating": false, "shouldDisplay": true, "abstract": "lora, dora: rank (default 8)."},
      {"kind": "flag", "names": [{"kind": "long", "name": "use-rslora"}], "isOptional": true, "isRepeating": false, "shouldDisplay": true, "abstract": "lora, dora: rsLoRA scaling."},
      {"kind": "option", "names": [{"kind": "long", "name": "dtype"}], "isOptional": true, "isRepeating": false, "shouldDisplay": true, "abstract": "Precision: float32 or bfloat16.", "allValues": ["float32", "bfloat16"]},
      {"kind": "option", "names": [{"kind": "long", "name": "adapter"}], "isOptional": true, "isRepeating": true, "shouldDisplay": true, "abstract": "NAME=DIR, repeatable."},
      {"kind": "option", "names": [{"kind": "long", "name": "secret"}], "isOptional": true, "isRepeating": false, "shouldDisplay": false, "abstract": "hidden"},
      {"kind": "flag", "names": [{"kind": "short", "name": "h"}, {"kind": "long", "name": "help"}], "isOptional": true, "isRepeating": false, "shouldDisplay": true, "abstract": "Show help information."}
    ]}}
    """#

    func testOptionsComeFromTheDumpWithTheirMethods() throws {
        let schema = try CommandSchema(command: "train", dump: Data(dump.utf8))
        XCTAssertEqual(schema.options.map(\.name), ["model", "method", "lora-r", "use-rslora", "dtype", "adapter"], "hidden options and --help are left out")
        let r = schema.options[2]
        XCTAssertEqual(r.methods, ["lora", "dora"])
        XCTAssertNil(schema.options[1].methods, "a help without method names belongs to every method")
        XCTAssertEqual(schema.options[1].defaultValue, "lora")
        XCTAssertEqual(schema.options[4].choices, ["float32", "bfloat16"])
        XCTAssertTrue(schema.options[3].isFlag)
        XCTAssertFalse(schema.options[0].isOptional)
    }

    func testArgumentsFollowTheSchemaOrderAndRefuseWhatItLacks() throws {
        let schema = try CommandSchema(command: "train", dump: Data(dump.utf8))
        XCTAssertEqual(try schema.arguments(["use-rslora": true, "lora-r": 16, "model": "m; rm -rf /", "adapter": ["a=x", "b=y"], "dtype": ""]),
                       ["train", "--model", "m; rm -rf /", "--lora-r", "16", "--use-rslora", "--adapter", "a=x", "--adapter", "b=y"],
                       "values are separate words, never shell text; empty values are left out")
        XCTAssertEqual(try schema.arguments(["model": "m", "use-rslora": false]), ["train", "--model", "m"])
        XCTAssertThrowsError(try schema.arguments(["model": "m", "rm": "x"])) { XCTAssertEqual("\($0)", "peft train has no option --rm") }
        XCTAssertThrowsError(try schema.arguments(["model": "m", "secret": "x"])) { XCTAssertEqual("\($0)", "peft train has no option --secret") }
        XCTAssertThrowsError(try schema.arguments(["lora-r": 8])) { XCTAssertEqual("\($0)", "peft train needs --model") }
        XCTAssertThrowsError(try schema.arguments(["model": "m", "use-rslora": "yes"])) { XCTAssertTrue("\($0)".contains("--use-rslora is a flag")) }
        XCTAssertThrowsError(try schema.arguments(["model": ["a", "b"]])) { XCTAssertEqual("\($0)", "--model takes one value") }
    }

    func testShellLineQuotesWhatTheShellWouldSplit() {
        XCTAssertEqual(shellLine(["peft", "train", "--model", "/m/Qwen1.5-1.8B", "--system", "you're kind", "--lr", "2e-4", "--x", ""]),
                       #"peft train --model /m/Qwen1.5-1.8B --system 'you'\''re kind' --lr 2e-4 --x ''"#)
    }
}
