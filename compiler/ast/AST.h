// The syntax tree of a .soma file. Every node carries the source range it came from, so that
// every later diagnostic can point at what the user wrote. Built by frontend/, checked by Sema.
#pragma once
#include "support/SourceManager.h"

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace soma::ast {

struct Arg;

// expr: number | string | name | name '(' args ')' | '[' exprs ']' | -expr | expr op expr
// Binary ops: + - * / @ and '>' for the chain arrow a -> b.
struct Expr {
  enum class Kind { Number, String, Name, Call, List, Unary, Binary };
  Kind kind = Kind::Number;
  SourceRange range;
  double number = 0;      // Number
  bool isInteger = false; // Number written without '.' or exponent
  std::string text;       // String value (unescaped), Name, or Call's callee
  SourceRange calleeRange;
  std::vector<Arg> args;   // Call
  std::vector<Expr> items; // List; Unary: {operand}; Binary: {lhs, rhs}
  char op = 0;             // Unary ('-'), Binary
};

// arg: (name ':')? expr
struct Arg {
  std::string name; // empty when positional
  SourceRange nameRange;
  Expr value;
};

// stmt: (target '=')? expr;  returnStmt: 'return' expr;  paramDecl: 'param' name ':' '[' dims ']' ('=' init)?
struct Stmt {
  enum class Kind { Value, Return, Param } kind = Kind::Value;
  std::string target; // Value: the name it defines, or empty for a chain; Param: the parameter's name
  SourceRange range, targetRange;
  Expr value;             // Value, Return: the expression; Param: the initializer (Kind::Name "default" if none)
  std::vector<Expr> dims; // Param
};

// formal: name (':' default)?
struct Formal {
  std::string name;
  SourceRange range;
  bool hasDefault = false;
  Expr defaultValue;
};

struct LayerDecl {
  std::string name;
  SourceRange range, nameRange;
  std::vector<Formal> formals;
  std::vector<Stmt> body;
};

// inputDecl: 'input' name ':' dtype '[' dims ']'
struct InputDecl {
  std::string name, dtype;
  SourceRange range, nameRange, dtypeRange;
  std::vector<int64_t> dims;
  std::vector<SourceRange> dimRanges;
};

struct ModelDecl {
  std::string name;
  SourceRange range, nameRange;
  std::vector<InputDecl> inputs;
  std::vector<Stmt> body; // in order
};

// dataDecl: 'data' name '=' expr;  setting: key '=' expr
struct Binding {
  std::string name;
  SourceRange range, nameRange;
  Expr value;
};

struct TrainDecl {
  std::string modelName;
  SourceRange range, nameRange;
  std::vector<Binding> data;
  std::vector<Binding> settings;
};

struct File {
  uint32_t fileId = 0;
  std::vector<ModelDecl> models;
  std::vector<TrainDecl> trains;
  std::vector<LayerDecl> layers; // user-defined layers
};

// Prints the tree as indented text (`soma emit ast`), with line:col of each node.
void print(const File &file, const SourceManager &sm, std::ostream &os);
std::string describe(const Expr &e); // a short rendering for messages: 3, "x", one_hot(...)

} // namespace soma::ast
